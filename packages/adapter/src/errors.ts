/**
 * Closed set of error codes the adapter produces. `@apt/server` maps each code
 * to an HTTP status and the Anthropic error envelope in one table.
 */
export type AdapterErrorCode =
  | 'APT_ADAPTER_CONNECT_TIMEOUT'
  | 'APT_ADAPTER_HEADERS_TIMEOUT'
  | 'APT_ADAPTER_BODY_TIMEOUT'
  | 'APT_ADAPTER_POOL_TIMEOUT'
  | 'APT_ADAPTER_CONNECT_FAILED'
  | 'APT_ADAPTER_UPSTREAM_RESET'
  | 'APT_ADAPTER_CLIENT_ABORTED'
  | 'APT_ADAPTER_BODY_TOO_LARGE'
  | 'APT_ADAPTER_CLOSED'
  | 'APT_ADAPTER_INVALID_REQUEST'
  | 'APT_ADAPTER_INVALID_OPTIONS'

export class AdapterError extends Error {
  override readonly name = 'AdapterError'
  readonly code: AdapterErrorCode

  constructor (code: AdapterErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** Timeout kinds counted in connection statistics. */
export type TimeoutKind = 'connect' | 'headers' | 'body' | 'poolWait'

interface CodedError { code?: unknown, message?: unknown }

/** Translate an undici / socket error into an AdapterError (kept as `cause`). */
export function toAdapterError (error: unknown): AdapterError {
  if (error instanceof AdapterError) return error
  const code = (error as CodedError | null)?.code
  const message = String((error as CodedError | null)?.message ?? error)
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new AdapterError('APT_ADAPTER_CONNECT_TIMEOUT', 'Timed out connecting to the upstream', { cause: error })
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new AdapterError('APT_ADAPTER_HEADERS_TIMEOUT', 'Timed out waiting for the upstream response headers', { cause: error })
    case 'UND_ERR_BODY_TIMEOUT':
      return new AdapterError('APT_ADAPTER_BODY_TIMEOUT', 'The upstream sent no data within the body idle timeout', { cause: error })
    case 'UND_ERR_ABORTED':
      return new AdapterError('APT_ADAPTER_CLIENT_ABORTED', 'The request was aborted', { cause: error })
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return new AdapterError('APT_ADAPTER_CLOSED', 'The upstream client is closed', { cause: error })
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
      return new AdapterError('APT_ADAPTER_INVALID_REQUEST', message, { cause: error })
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'CERT_HAS_EXPIRED':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return new AdapterError('APT_ADAPTER_CONNECT_FAILED', `Could not connect to the upstream (${String(code)})`, { cause: error })
    default:
      return new AdapterError('APT_ADAPTER_UPSTREAM_RESET', `The upstream connection failed: ${message}`, { cause: error })
  }
}

/** Errors that mean "the socket died before the upstream answered": safe to replay on a reused socket. */
export function isStaleSocketError (error: unknown): boolean {
  const code = (error as CodedError | null)?.code
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_CLOSED'
}
