import { describe, expect, test } from 'vitest'
import { millisecondsWith3Decimals } from './forward-handler.js'

describe('millisecondsWith3Decimals (the server-timing duration)', () => {
  test('the format of toFixed(3), and its value but for the last digit at exact halves, from sub-microsecond to hours', () => {
    const samples = [0, 0.0004, 0.0005, 0.001, 0.0015, 0.0099, 0.01, 0.0996, 0.1, 1, 1.9995, 12.3456789, 999.9996, 3_600_000.25]
    for (let i = 0; i < 20_000; i++) samples.push(((i * 7919) % 100_003) / 10 ** (i % 7))
    let differing = 0
    for (const ms of samples) {
      const text = millisecondsWith3Decimals(ms)
      expect(text).toMatch(/^\d+\.\d{3}$/)
      // Math.round(ms * 1000) rounds the product, toFixed the exact binary value: 6.4265 → 6.427 / 6.426.
      expect(Math.abs(Number(text) - Number(ms.toFixed(3)))).toBeLessThan(0.0011)
      if (text !== ms.toFixed(3)) differing++
    }
    expect(differing).toBeLessThan(samples.length / 100)
  })
})
