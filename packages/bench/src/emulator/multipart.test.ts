import { describe, expect, it } from 'vitest'
import { MultipartError, multipartBoundary, parseMultipart } from './multipart.js'

function body(...pieces: (string | Buffer)[]): Buffer {
  return Buffer.concat(pieces.map((piece) => (typeof piece === 'string' ? Buffer.from(piece) : piece)))
}

describe('multipartBoundary', () => {
  it.each([
    ['multipart/form-data; boundary=abc', 'abc'],
    ['Multipart/Form-Data; charset=utf-8; boundary="a b;c"', 'a b;c'],
    ['multipart/form-data;boundary=----formdata-undici-0123', '----formdata-undici-0123'],
  ])('reads %s', (contentType, boundary) => {
    expect(multipartBoundary(contentType)).toBe(boundary)
  })

  it.each([undefined, 'application/json', 'multipart/mixed; boundary=x', 'multipart/form-data'])('rejects %s', (contentType) => {
    expect(multipartBoundary(contentType)).toBeUndefined()
  })
})

describe('parseMultipart', () => {
  it('returns byte-exact part data, names, filenames and content types', () => {
    const binary = Buffer.from([0, 13, 10, 45, 45, 99, 255])
    const parts = parseMultipart(
      body(
        'preamble\r\n--b\r\n',
        'Content-Disposition: form-data; name="file"; filename="a \\"q\\" %22x%22.bin"\r\nContent-Type: image/png\r\n\r\n',
        binary,
        '\r\n--b \t\r\n',
        "Content-Disposition: form-data; name=plain; filename*=UTF-8''na%C3%AFve.txt\r\n\r\n",
        '\r\n--b\r\n\r\nno headers\r\n--b--\r\nepilogue',
      ),
      'b',
    )
    expect(parts).toHaveLength(3)
    expect(parts[0]).toMatchObject({ name: 'file', filename: 'a "q" "x".bin', contentType: 'image/png' })
    expect(parts[0]?.data).toEqual(binary)
    expect(parts[1]).toMatchObject({ name: 'plain', filename: 'naïve.txt', contentType: undefined })
    expect(parts[1]?.data.length).toBe(0)
    expect(parts[2]).toMatchObject({ name: undefined, headers: {} })
    expect(parts[2]?.data.toString()).toBe('no headers')
  })

  it.each([
    ['no boundary at all', 'just text'],
    ['a missing closing delimiter', '--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue'],
    ['unterminated headers', '--b\r\nContent-Disposition: form-data'],
    ['a header line without a colon', '--b\r\nnot a header\r\n\r\nx\r\n--b--'],
    ['garbage after a delimiter', '--bXYZ\r\n\r\nx\r\n--b--'],
  ])('throws MultipartError on %s', (_case, text) => {
    expect(() => parseMultipart(Buffer.from(text), 'b')).toThrow(MultipartError)
  })
})
