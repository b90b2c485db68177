import { describe, expect, it } from 'vitest'
import { EmulatedApiError } from './api-error.js'
import { paginate } from './pagination.js'

const items = ['a', 'b', 'c', 'd', 'e'].map((id) => ({ id }))

function page(query: string) {
  const result = paginate(items, new URLSearchParams(query))
  return { ids: result.data.map((item) => item.id).join(''), first: result.first_id, last: result.last_id, more: result.has_more }
}

describe('paginate', () => {
  it.each([
    ['', { ids: 'abcde', first: 'a', last: 'e', more: false }],
    ['limit=2', { ids: 'ab', first: 'a', last: 'b', more: true }],
    ['limit=2&after_id=b', { ids: 'cd', first: 'c', last: 'd', more: true }],
    ['limit=2&after_id=d', { ids: 'e', first: 'e', last: 'e', more: false }],
    ['limit=2&page=c', { ids: 'de', first: 'd', last: 'e', more: false }],
    ['limit=2&before_id=e', { ids: 'cd', first: 'c', last: 'd', more: true }],
    ['limit=2&before_id=c', { ids: 'ab', first: 'a', last: 'b', more: false }],
    ['limit=2&before_id=a', { ids: '', first: null, last: null, more: false }],
    ['after_id=gone', { ids: '', first: null, last: null, more: false }],
    ['before_id=gone', { ids: '', first: null, last: null, more: false }],
  ])('pages %s', (query, expected) => {
    expect(page(query)).toEqual(expected)
  })

  it.each(['limit=0', 'limit=1001', 'limit=2.5', 'limit=x', 'after_id=a&before_id=b'])('rejects %s with 400', (query) => {
    expect(() => page(query)).toThrow(EmulatedApiError)
  })
})
