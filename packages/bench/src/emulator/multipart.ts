/** One part of a `multipart/form-data` body. */
export interface MultipartPart {
  /** Header names lower-cased. */
  headers: Record<string, string>
  name: string | undefined
  filename: string | undefined
  contentType: string | undefined
  /** A view into the request body: the exact bytes of the part. */
  data: Buffer
}

export class MultipartError extends Error {
  override readonly name = 'MultipartError'
}

const CRLF = Buffer.from('\r\n')
const HEADER_END = Buffer.from('\r\n\r\n')

/** The `boundary` parameter of a `multipart/form-data` content-type, or undefined. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (contentType === undefined || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined
  const match = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType)
  return match?.[1] ?? match?.[2]
}

/** HTML form encoding escapes `"`, CR and LF in names as %22, %0D, %0A. */
function unescapeFormName(value: string): string {
  return value.replace(/%22/g, '"').replace(/%0D/gi, '\r').replace(/%0A/gi, '\n')
}

function dispositionParameter(disposition: string, parameter: string): string | undefined {
  const extended = new RegExp(`;\\s*${parameter}\\*\\s*=\\s*([^']*)'[^']*'([^;]*)`, 'i').exec(disposition)
  if (extended?.[2] !== undefined) {
    try {
      return decodeURIComponent(extended[2].trim())
    } catch {
      // fall through to the plain parameter
    }
  }
  const quoted = new RegExp(`;\\s*${parameter}\\s*=\\s*"((?:[^"\\\\]|\\\\.)*)"`, 'i').exec(disposition)
  if (quoted?.[1] !== undefined) return unescapeFormName(quoted[1].replace(/\\(.)/g, '$1'))
  const token = new RegExp(`;\\s*${parameter}\\s*=\\s*([^;\\s]+)`, 'i').exec(disposition)
  return token?.[1]
}

function parseHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new MultipartError(`Malformed multipart header line: '${line}'`)
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return headers
}

/**
 * Splits a complete `multipart/form-data` body (RFC 7578) into parts; part data
 * are views of `body`, byte-exact. Throws `MultipartError` on malformed input.
 */
export function parseMultipart(body: Buffer, boundary: string): MultipartPart[] {
  const delimiter = Buffer.from(`--${boundary}`)
  const nextDelimiter = Buffer.from(`\r\n--${boundary}`)
  let position = body.indexOf(delimiter)
  if (position < 0) throw new MultipartError('Multipart boundary not found in body')
  const parts: MultipartPart[] = []
  for (;;) {
    position += delimiter.length
    if (body[position] === 0x2d && body[position + 1] === 0x2d) return parts
    // Transport padding (spaces/tabs) may follow a delimiter before its CRLF.
    while (body[position] === 0x20 || body[position] === 0x09) position++
    if (!body.subarray(position, position + 2).equals(CRLF)) throw new MultipartError('Malformed multipart delimiter')
    position += CRLF.length
    let headers: Record<string, string> = {}
    let dataStart: number
    if (body.subarray(position, position + 2).equals(CRLF)) {
      dataStart = position + 2
    } else {
      const headerEnd = body.indexOf(HEADER_END, position)
      if (headerEnd < 0) throw new MultipartError('Unterminated multipart part headers')
      headers = parseHeaders(body.toString('utf8', position, headerEnd))
      dataStart = headerEnd + HEADER_END.length
    }
    const dataEnd = body.indexOf(nextDelimiter, dataStart)
    if (dataEnd < 0) throw new MultipartError('Missing closing multipart boundary')
    const disposition = headers['content-disposition'] ?? ''
    parts.push({
      headers,
      name: dispositionParameter(disposition, 'name'),
      filename: dispositionParameter(disposition, 'filename'),
      contentType: headers['content-type'],
      data: body.subarray(dataStart, dataEnd),
    })
    position = dataEnd + CRLF.length
  }
}
