export { AdapterError, type AdapterErrorCode, type TimeoutKind } from './errors.js'
export type { Exchange, ExchangeHooks, ResponseObserver } from './forward-handler.js'
export { copyResponseHeaders, prepareRequestHead, prepareRequestHeaders, RequestHead, type RequestHeaderOptions, type ResponseHeaderFacts } from './headers.js'
export { resolveOptions, type ResolvedUpstreamOptions, type UpstreamClientOptions } from './options.js'
export {
  createUpstreamClient,
  type ConnectionStats,
  type ForwardOptions,
  type ForwardRequest,
  type UpstreamClient,
  type WarmUpResult,
} from './upstream-client.js'
