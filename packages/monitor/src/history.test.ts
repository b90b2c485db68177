import { expect, test } from 'vitest'
import { HistoryRing } from './history.js'

test('keeps the newest entries, oldest first, once full', () => {
  const ring = new HistoryRing<number>(3)
  expect(ring.toArray()).toEqual([])
  ring.push(1)
  ring.push(2)
  expect(ring.toArray()).toEqual([1, 2])
  ring.push(3)
  ring.push(4)
  ring.push(5)
  expect(ring.size).toBe(3)
  expect(ring.toArray()).toEqual([3, 4, 5])
})

test('capacity 0 keeps nothing', () => {
  const ring = new HistoryRing<number>(0)
  ring.push(1)
  expect(ring.toArray()).toEqual([])
  expect(ring.size).toBe(0)
})
