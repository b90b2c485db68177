import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { describeCpuIdle, readCpuIdle } from './cpu-idle.js'

const roots: string[] = []

/** A sysfs tree with the given files (path relative to the root → content). */
function sysfs (files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'apt-sysfs-'))
  roots.push(root)
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), content)
  }
  return root
}

afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true })
})

const DRIVER = 'devices/system/cpu/cpuidle/current_driver'
const POLL = 'module/haltpoll/parameters/guest_halt_poll_ns'

describe('idle CPUs, from sysfs', () => {
  test('a KVM guest whose haltpoll driver does not poll', () => {
    const facts = readCpuIdle(sysfs({ [DRIVER]: 'haltpoll\n', [POLL]: '0\n' }))
    expect(facts).toEqual({ driver: 'haltpoll', haltPollNs: 0 })
    expect(describeCpuIdle(facts)).toBe('cpuidle haltpoll, guest halt polling off (guest_halt_poll_ns 0): waking an idle CPU is a VM exit')
  })

  test('a guest that polls before halting', () => {
    const facts = readCpuIdle(sysfs({ [DRIVER]: 'haltpoll\n', [POLL]: '200000\n' }))
    expect(facts).toEqual({ driver: 'haltpoll', haltPollNs: 200_000 })
    expect(describeCpuIdle(facts)).toBe('cpuidle haltpoll, guest halt polling up to 200 µs (guest_halt_poll_ns 200000)')
  })

  test('bare metal: a driver and no haltpoll module', () => {
    const facts = readCpuIdle(sysfs({ [DRIVER]: 'intel_idle\n' }))
    expect(facts).toEqual({ driver: 'intel_idle', haltPollNs: null })
    expect(describeCpuIdle(facts)).toBe('cpuidle intel_idle')
  })

  test('nothing readable (another system, a container without sysfs): nulls, no line', () => {
    const facts = readCpuIdle(sysfs({}))
    expect(facts).toEqual({ driver: null, haltPollNs: null })
    expect(describeCpuIdle(facts)).toBeNull()
    expect(describeCpuIdle(undefined)).toBeNull()
  })

  test('a poll value that is not a number is not reported as one', () => {
    expect(readCpuIdle(sysfs({ [DRIVER]: 'haltpoll', [POLL]: 'n/a' }))).toEqual({ driver: 'haltpoll', haltPollNs: null })
  })
})
