import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { afterAll, describe, expect, it } from 'vitest'
import { startCommandProcess } from '../src/managed-process.js'
import { eventually } from './eventually.js'

const directory = mkdtempSync(join(tmpdir(), 'apt-bench-process-'))

afterAll(() => {
  rmSync(directory, { recursive: true, force: true })
})

/** The state letter of /proc/PID/stat: R, S, T (stopped), ... */
function state(pid: number): string {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] ?? '?'
}

describe.runIf(process.platform === 'linux')('a target waiting for its turn', () => {
  it('is stopped with its whole process group, answers nothing, and runs again when resumed', async () => {
    // `sh -c` leads the group; node is its child, as a --compare command's server is.
    const target = await startCommandProcess([], {
      name: 'hello',
      command: 'node -e "require(\'http\').createServer((q, s) => s.end(\'ok\')).listen(process.env.PORT, \'127.0.0.1\')"',
      upstreamUrl: 'http://127.0.0.1:1',
      directory,
    })
    try {
      expect(await (await request(target.url)).body.text()).toBe('ok')
      target.pause()
      // The signal is delivered asynchronously.
      await eventually(() => expect(state(target.pid)).toBe('T'))
      const answer = request(target.url, { headersTimeout: 300 })
      await expect(answer).rejects.toThrow(/timeout/i)
      expect(target.resume()).toBe(true)
      expect(target.resume()).toBe(false)
      expect(await (await request(target.url)).body.text()).toBe('ok')
      // close() continues a stopped target first, or SIGTERM would wait in the queue.
      target.pause()
    } finally {
      await target.close()
    }
    expect(target.exited).toBe('SIGTERM')
  })
})
