import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * How the machine's idle CPUs wait, as Linux reports it. It sets the cost of waking a CPU
 * that has nothing to do, which a proxy on a CPU of its own pays at concurrency 1: in a KVM
 * guest whose `haltpoll` driver does not poll (`guest_halt_poll_ns` 0), every wake-up is a
 * VM exit, and one cross-CPU round trip costs 70-110 µs instead of about 14 (docs/benchmark.md).
 */
export interface CpuIdleFacts {
  /** `cpuidle`'s current driver (`haltpoll`, `intel_idle`, `acpi_idle`, `none`), null where unreadable. */
  driver: string | null
  /** The `haltpoll` driver's longest poll before halting, ns; null where the driver is not loaded. */
  haltPollNs: number | null
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'latin1').trim()
  } catch {
    return null
  }
}

/** Reads the facts from sysfs (`root` for tests); nulls where a file is missing (other systems, containers). */
export function readCpuIdle(root = '/sys'): CpuIdleFacts {
  const driver = readText(join(root, 'devices/system/cpu/cpuidle/current_driver'))
  const poll = readText(join(root, 'module/haltpoll/parameters/guest_halt_poll_ns'))
  const haltPollNs = poll !== null && /^\d+$/.test(poll) ? Number(poll) : null
  return { driver: driver === '' ? null : driver, haltPollNs }
}

/** One line for the report, or null when nothing is known. */
export function describeCpuIdle(facts: CpuIdleFacts | undefined): string | null {
  if (facts === undefined || (facts.driver === null && facts.haltPollNs === null)) return null
  const driver = `cpuidle ${facts.driver ?? 'unknown'}`
  if (facts.haltPollNs === null) return driver
  if (facts.haltPollNs === 0) return `${driver}, guest halt polling off (guest_halt_poll_ns 0): waking an idle CPU is a VM exit`
  return `${driver}, guest halt polling up to ${Math.round(facts.haltPollNs / 1000)} µs (guest_halt_poll_ns ${facts.haltPollNs})`
}
