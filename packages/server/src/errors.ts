import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { AdapterErrorCode } from '@apt/adapter'

/** Codes for errors the server itself decides on. */
export type ServerErrorCode =
  | 'APT_SERVER_NOT_FOUND'
  | 'APT_SERVER_UNAUTHORIZED'
  | 'APT_SERVER_BODY_TOO_LARGE'
  | 'APT_SERVER_DRAINING'
  | 'APT_SERVER_METRICS_UNAUTHORIZED'
  | 'APT_SERVER_INVALID_REQUEST'
  | 'APT_SERVER_INTERNAL'

export type ProxyErrorCode = ServerErrorCode | AdapterErrorCode

/** Anthropic `error.type` values the proxy emits. */
export type AnthropicErrorType =
  | 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'request_too_large'
  | 'api_error' | 'timeout_error' | 'overloaded_error'

interface ErrorPolicy { status: number, type: AnthropicErrorType, retryAfterSeconds?: number, shouldRetry?: boolean }

/**
 * The one table from error code to HTTP status and Anthropic error type. The
 * `Record` over the closed union makes the compiler check it is exhaustive.
 * Statuses follow the SDK retry rules: 5xx/529 are retried, 4xx are not.
 */
export const ERROR_POLICY: Readonly<Record<ProxyErrorCode, ErrorPolicy>> = {
  APT_SERVER_NOT_FOUND: { status: 404, type: 'not_found_error' },
  APT_SERVER_UNAUTHORIZED: { status: 401, type: 'authentication_error' },
  APT_SERVER_BODY_TOO_LARGE: { status: 413, type: 'request_too_large' },
  APT_SERVER_DRAINING: { status: 503, type: 'overloaded_error', retryAfterSeconds: 1 },
  APT_SERVER_METRICS_UNAUTHORIZED: { status: 401, type: 'authentication_error' },
  APT_SERVER_INVALID_REQUEST: { status: 400, type: 'invalid_request_error' },
  APT_SERVER_INTERNAL: { status: 500, type: 'api_error' },
  APT_ADAPTER_CONNECT_TIMEOUT: { status: 504, type: 'timeout_error' },
  APT_ADAPTER_HEADERS_TIMEOUT: { status: 504, type: 'timeout_error' },
  APT_ADAPTER_BODY_TIMEOUT: { status: 504, type: 'timeout_error' },
  APT_ADAPTER_POOL_TIMEOUT: { status: 529, type: 'overloaded_error', retryAfterSeconds: 1 },
  APT_ADAPTER_CONNECT_FAILED: { status: 502, type: 'api_error' },
  APT_ADAPTER_UPSTREAM_RESET: { status: 502, type: 'api_error' },
  APT_ADAPTER_CLIENT_ABORTED: { status: 499, type: 'invalid_request_error', shouldRetry: false },
  APT_ADAPTER_BODY_TOO_LARGE: { status: 413, type: 'request_too_large' },
  APT_ADAPTER_CLOSED: { status: 503, type: 'overloaded_error', retryAfterSeconds: 1 },
  APT_ADAPTER_INVALID_REQUEST: { status: 400, type: 'invalid_request_error', shouldRetry: false },
  APT_ADAPTER_INVALID_OPTIONS: { status: 500, type: 'api_error' },
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** A request id in Anthropic's style, marked as the proxy's own (`req_apt_…`). */
export function proxyRequestId (): string {
  const bytes = randomBytes(20)
  let id = 'req_apt_'
  for (let i = 0; i < bytes.length; i++) id += ALPHABET[(bytes[i] as number) % ALPHABET.length]
  return id
}

export interface ErrorBody { type: 'error', error: { type: AnthropicErrorType, message: string }, request_id: string }

export function errorBody (type: AnthropicErrorType, message: string, requestId: string): ErrorBody {
  return { type: 'error', error: { type, message }, request_id: requestId }
}

/**
 * Write a proxy-generated error in the Anthropic envelope, with `request-id`,
 * `retry-after` and `x-should-retry` where the policy says so.
 */
export function sendError (response: ServerResponse, code: ProxyErrorCode, message: string, options: { close?: boolean } = {}): string {
  const policy = ERROR_POLICY[code]
  const requestId = proxyRequestId()
  const payload = JSON.stringify(errorBody(policy.type, message, requestId))
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    'request-id': requestId,
    'x-apt-error-code': code,
  }
  if (policy.retryAfterSeconds !== undefined) headers['retry-after'] = policy.retryAfterSeconds
  if (policy.shouldRetry !== undefined) headers['x-should-retry'] = String(policy.shouldRetry)
  if (options.close === true) headers.connection = 'close'
  if (!response.headersSent && !response.destroyed) {
    response.writeHead(policy.status, headers)
    response.end(payload)
  }
  return requestId
}
