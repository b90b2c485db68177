import { expect, test } from 'vitest'
import { createHdr, Distribution, HdrIndexer, scaleValue, summarizeSum } from './distribution.js'

const indexer = new HdrIndexer(3)
function record (distribution: Distribution, value: number): void {
  const scaled = scaleValue(value)
  distribution.recordAt(indexer.indexOf(scaled), scaled, value)
}

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
    // Read together without a merged copy: the same summary.
    expect(summarizeSum(order, all.min, all.max)).toEqual(all.summary())
  }
  expect(summarizeSum([new Distribution(3), new Distribution(3)], 0, 0)).toEqual(new Distribution(3).summary())
})

test('subtracting a part that was added leaves the rest: counts, count and sum exact; emptied, it is reset', () => {
  const early = new Distribution(3)
  const late = new Distribution(3) // grows the sum's array further than `early` does
  for (let index = 1; index <= 500; index++) {
    record(early, index / 100)
    record(late, index * 7_200)
  }
  const sum = new Distribution(3)
  sum.add(early)
  sum.add(late)
  sum.subtract(early)
  expect(sum.count).toBe(500)
  expect(sum.histogram.totalCount).toBe(500)
  expect(sum.sum).toBeCloseTo(late.sum, 6)
  // min and max are the caller's to set after a subtraction.
  sum.min = late.min
  expect(sum.summary()).toEqual(late.summary())
  sum.subtract(late)
  expect(sum.count).toBe(0)
  expect(sum.summary().p50).toBeNull()
  expect(sum.histogram.totalCount).toBe(0)
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
