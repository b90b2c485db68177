import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'

/**
 * A ceiling on V8's young generation, set from inside the process.
 *
 * Under load V8 doubles its semi-spaces up to 16 MiB each (a 32 MiB new
 * space), and that growth, not what a stream holds, is most of the RSS an
 * open stream appears to cost (docs/performance.md, changes 4 and 26).
 * `--max-semi-space-size` bounds it, but V8 reads that flag only when the
 * heap is created, so it would have to be on every command line that starts
 * the proxy. V8 reads `--semi-space-growth-factor` each time it grows the new
 * space, so the growth can be stopped at run time instead: after every
 * garbage collection the new space's size is compared with the ceiling, and
 * growth is allowed only while one more doubling stays within it.
 *
 * Growth is held from the moment this module is evaluated (main.ts imports it
 * first): module loading runs many scavenges before any observer callback can.
 */

/** V8's own default growth factor of the new space. */
const V8_GROWTH_FACTOR = 2
const MIB = 1024 * 1024

let currentFactor = V8_GROWTH_FACTOR
function setGrowthFactor (factor: number): void {
  if (factor === currentFactor) return
  currentFactor = factor
  setFlagsFromString(`--semi-space-growth-factor=${factor}`)
}
setGrowthFactor(1)

/** Bytes V8 has reserved for the new space (both semi-spaces). */
export function newSpaceSize (): number {
  for (const space of getHeapSpaceStatistics()) if (space.space_name === 'new_space') return space.space_size
  return 0
}

export interface NewSpaceLimit {
  /** The ceiling of the new space in bytes (2 × the semi-space size); 0 when V8 sizes it alone. */
  readonly maxBytes: number
  /** V8 grows the new space as it would by default from now on. */
  close: () => void
}

/**
 * Keep the new space within 2 × `maxSemiSpaceMiB` MiB, the bound
 * `--max-semi-space-size=<maxSemiSpaceMiB>` would set. 0 lets V8 grow it
 * as it would by default (semi-spaces up to 16 MiB on 64-bit).
 */
export function limitNewSpace (maxSemiSpaceMiB: number): NewSpaceLimit {
  if (!(maxSemiSpaceMiB > 0)) {
    setGrowthFactor(V8_GROWTH_FACTOR)
    return { maxBytes: 0, close: () => {} }
  }
  const maxBytes = maxSemiSpaceMiB * 2 * MIB
  const check = (): void => {
    setGrowthFactor(newSpaceSize() * V8_GROWTH_FACTOR <= maxBytes ? V8_GROWTH_FACTOR : 1)
  }
  check()
  const observer = new PerformanceObserver(check)
  observer.observe({ entryTypes: ['gc'] })
  return {
    maxBytes,
    close: () => {
      observer.disconnect()
      setGrowthFactor(V8_GROWTH_FACTOR)
    },
  }
}
