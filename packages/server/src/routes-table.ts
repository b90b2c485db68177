/** Bounded route labels for metrics and logs: raw paths never become label values. */
export type RouteName =
  | 'messages' | 'count_tokens' | 'batches' | 'batch_results' | 'files' | 'file_content' | 'models' | 'complete' | 'other'

export const ROUTE_NAMES: readonly RouteName[] = [
  'messages', 'count_tokens', 'batches', 'batch_results', 'files', 'file_content', 'models', 'complete', 'other',
]

/** Classify a `/v1/...` request target (query ignored) with plain string checks. */
export function classifyRoute (url: string): RouteName {
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  if (path === '/v1/messages') return 'messages'
  if (path.startsWith('/v1/messages/')) {
    if (path === '/v1/messages/count_tokens') return 'count_tokens'
    if (path.startsWith('/v1/messages/batches')) return path.endsWith('/results') ? 'batch_results' : 'batches'
    return 'other'
  }
  if (path.startsWith('/v1/files')) return path.endsWith('/content') ? 'file_content' : 'files'
  if (path.startsWith('/v1/models')) return 'models'
  if (path === '/v1/complete') return 'complete'
  return 'other'
}
