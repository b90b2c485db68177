import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Whether `ref`'s target is collected within 20 forced garbage collections: how the suites prove
 * that a long-lived object (an open stream, a pooled connection) no longer keeps something alive.
 */
export async function collectedByGc (ref: WeakRef<object>): Promise<boolean> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  for (let i = 0; i < 20; i++) {
    // deref() keeps its target alive until the current job ends, so each gc() runs in a later one.
    await sleep(10)
    gc()
    await sleep(10)
    if (ref.deref() === undefined) return true
  }
  return false
}
