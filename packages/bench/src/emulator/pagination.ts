import { invalidRequest } from './api-error.js'

/** A `Page` response: `{data, first_id, last_id, has_more}`. */
export interface Page<Item> {
  data: Item[]
  first_id: string | null
  last_id: string | null
  has_more: boolean
}

const DEFAULT_LIMIT = 20
const MAX_LIMIT = 1000

/**
 * `Page` pagination over `items` in listing order (`limit` 1-1000, default 20;
 * `after_id` = items after that id, `before_id` = the `limit` items just before it).
 * `page` is accepted as an alias of `after_id` for `PageCursor` clients. An id
 * that is not (or no longer) listed yields an empty page.
 */
export function paginate<Item extends { id: string }>(items: readonly Item[], query: URLSearchParams): Page<Item> {
  const rawLimit = query.get('limit')
  const limit = rawLimit === null ? DEFAULT_LIMIT : Number(rawLimit)
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw invalidRequest(`limit: Input should be an integer from 1 to ${MAX_LIMIT}, got '${rawLimit}'`)
  }
  const beforeId = query.get('before_id')
  const afterId = query.get('after_id') ?? query.get('page')
  if (beforeId !== null && afterId !== null) throw invalidRequest('Cannot specify both before_id and after_id')
  let data: Item[]
  let hasMore: boolean
  if (beforeId !== null) {
    const end = items.findIndex((item) => item.id === beforeId)
    const start = Math.max(0, end - limit)
    data = end < 0 ? [] : items.slice(start, end)
    hasMore = end > 0 && start > 0
  } else {
    const start = afterId === null ? 0 : items.findIndex((item) => item.id === afterId) + 1
    data = afterId !== null && start === 0 ? [] : items.slice(start, start + limit)
    hasMore = data.length > 0 && start + limit < items.length
  }
  return { data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: hasMore }
}
