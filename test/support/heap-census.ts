import { getHeapSnapshot } from 'node:v8'

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

/**
 * How many objects of each named class are alive in this process, counted in a V8 heap snapshot
 * (taking one collects all garbage first): how the suites prove that an exchange, whatever way it
 * ended, leaves nothing of its own behind. Counts by constructor name, so a name must be unique to
 * the class it counts.
 */
export async function liveInstances (names: readonly string[]): Promise<Record<string, number>> {
  const pieces: Buffer[] = []
  for await (const piece of getHeapSnapshot()) pieces.push(piece as Buffer)
  const snapshot = JSON.parse(Buffer.concat(pieces).toString('utf8')) as Snapshot
  const fields = snapshot.snapshot.meta.node_fields
  const objectType = snapshot.snapshot.meta.node_types[0].indexOf('object')
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const wanted = new Map<number, string>()
  snapshot.strings.forEach((text, index) => { if (names.includes(text)) wanted.set(index, text) })
  const counts: Record<string, number> = Object.fromEntries(names.map((name) => [name, 0]))
  const { nodes } = snapshot
  for (let at = 0; at < nodes.length; at += fields.length) {
    if (nodes[at + typeAt] !== objectType) continue
    const name = wanted.get(nodes[at + nameAt] as number)
    if (name !== undefined) counts[name] = (counts[name] as number) + 1
  }
  return counts
}
