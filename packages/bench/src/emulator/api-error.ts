/** `error.type` values of the Anthropic error envelope. */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'billing_error'
  | 'permission_error'
  | 'not_found_error'
  | 'conflict_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'timeout_error'
  | 'overloaded_error'

const ERROR_TYPE_BY_STATUS: ReadonlyMap<number, AnthropicErrorType> = new Map([
  [400, 'invalid_request_error'],
  [401, 'authentication_error'],
  [402, 'billing_error'],
  [403, 'permission_error'],
  [404, 'not_found_error'],
  [409, 'conflict_error'],
  [413, 'request_too_large'],
  [429, 'rate_limit_error'],
  [500, 'api_error'],
  [504, 'timeout_error'],
  [529, 'overloaded_error'],
])

const DEFAULT_MESSAGES: Readonly<Record<AnthropicErrorType, string>> = {
  invalid_request_error: 'Invalid request',
  authentication_error: 'invalid x-api-key',
  billing_error: 'Your credit balance is too low to access the Anthropic API.',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'Not found',
  conflict_error: 'Conflict',
  request_too_large: 'Request exceeds the maximum allowed number of bytes.',
  rate_limit_error: 'Number of request tokens has exceeded your per-minute rate limit',
  api_error: 'Internal server error',
  timeout_error: 'Request timed out',
  overloaded_error: 'Overloaded',
}

/**
 * The documented status → `error.type` table. Statuses not in it map like the API
 * describes: other 4xx → `invalid_request_error`, other 5xx → `api_error`.
 */
export function errorTypeForStatus(status: number): AnthropicErrorType {
  return ERROR_TYPE_BY_STATUS.get(status) ?? (status >= 500 ? 'api_error' : 'invalid_request_error')
}

export function defaultErrorMessage(type: AnthropicErrorType): string {
  return DEFAULT_MESSAGES[type]
}

/** `{"type":"error","error":{"type":…,"message":…},"request_id":"req_…"}` */
export function errorBody(type: AnthropicErrorType, message: string, requestId: string): string {
  return JSON.stringify({ type: 'error', error: { type, message }, request_id: requestId })
}

/** Payload of the mid-stream `event: error` frame, in the shape seen from the real API. */
export function streamErrorBody(requestId: string): string {
  return JSON.stringify({
    type: 'error',
    error: { details: null, type: 'overloaded_error', message: 'Overloaded' },
    request_id: requestId,
  })
}

/**
 * Thrown by route handlers for a request the API would reject; the emulator
 * answers it with the Anthropic error envelope and this status.
 */
export class EmulatedApiError extends Error {
  override readonly name = 'EmulatedApiError'
  readonly status: number
  readonly type: AnthropicErrorType

  constructor(status: number, message: string, type: AnthropicErrorType = errorTypeForStatus(status)) {
    super(message)
    this.status = status
    this.type = type
  }
}

export function notFound(message = 'Not found'): EmulatedApiError {
  return new EmulatedApiError(404, message)
}

export function invalidRequest(message: string): EmulatedApiError {
  return new EmulatedApiError(400, message)
}
