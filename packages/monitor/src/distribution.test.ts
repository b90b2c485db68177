import { expect, test } from 'vitest'
import { createHdr, Distribution, HdrIndexer, scaleValue } from './distribution.js'

test.each([1, 2, 3, 4, 5] as const)('HdrIndexer matches HdrHistogram countsArrayIndex (%i digits)', (digits) => {
  const indexer = new HdrIndexer(digits)
  const reference = createHdr(digits)
  const values = [0, 1, 2, 3, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 123_456, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40]
  for (let power = 1; power < 40; power++) values.push(2 ** power - 1, 2 ** power, 2 ** power + 1)
  let seed = 7
  for (let index = 0; index < 2_000; index++) {
    seed = (seed * 48_271) % 2_147_483_647
    values.push(Math.floor((seed / 2_147_483_647) * 2 ** (seed % 41)))
  }
  for (const value of values) expect([value, indexer.indexOf(value)]).toEqual([value, reference.countsArrayIndex(value)])
})

test('merging distributions of different sizes equals recording everything into one', () => {
  const indexer = new HdrIndexer(3)
  const record = (distribution: Distribution, value: number): void => {
    const scaled = scaleValue(value)
    distribution.recordAt(indexer.indexOf(scaled), scaled, value)
  }
  const small = new Distribution(3) // stays small: values below 2 ms
  const large = new Distribution(3) // grows: values up to an hour
  const all = new Distribution(3)
  for (let index = 1; index <= 1_000; index++) {
    record(small, index / 1_000)
    record(all, index / 1_000)
    record(large, index * 3_600)
    record(all, index * 3_600)
  }
  for (const order of [[small, large], [large, small]]) {
    const merged = new Distribution(3)
    for (const part of order) merged.add(part)
    expect(merged.summary()).toEqual(all.summary())
    expect(merged.histogram.totalCount).toBe(2_000)
    expect(merged.percentile(25)).toBe(all.percentile(25))
  }
})

test('values beyond the largest recordable are clamped, not thrown', () => {
  const indexer = new HdrIndexer(3)
  const distribution = new Distribution(3)
  const scaled = scaleValue(1e15)
  expect(scaled).toBe(2 ** 40)
  distribution.recordAt(indexer.indexOf(scaled), scaled, 1e15)
  expect(distribution.summary().count).toBe(1)
})

test('merging a reset, reused histogram (grown array, small values again) into a mid-size one neither throws nor loses counts', () => {
  const indexer = new HdrIndexer(3)
  const record = (distribution: Distribution, value: number): void => {
    const scaled = scaleValue(value)
    distribution.recordAt(indexer.indexOf(scaled), scaled, value)
  }
  // A window slice: grew to an hour-long value, was reset when the window moved on, now holds small values.
  const slice = new Distribution(3)
  record(slice, 3_600_000)
  slice.reset()
  record(slice, 0.5)
  record(slice, 2)
  // The read-side scratch distribution: grown a little by earlier values.
  const scratch = new Distribution(3)
  record(scratch, 250)
  expect(scratch.histogram.countsArrayLength).toBeLessThan(slice.histogram.countsArrayLength)
  scratch.add(slice) // threw "RangeError: offset is out of bounds" in HdrHistogram's resize
  expect(scratch.count).toBe(3)
  expect(scratch.histogram.totalCount).toBe(3)
  expect(scratch.summary()).toMatchObject({ count: 3, min: 0.5, max: 250 })
  expect(scratch.percentile(50)).toBe(2)
})
