import { invalidRequest, notFound } from './api-error.js'
import type { Exchange } from './exchange.js'
import { createId } from './ids.js'
import { MultipartError, multipartBoundary, parseMultipart } from './multipart.js'
import { paginate } from './pagination.js'

/** `FileMetadata` as the Files API returns it. */
export interface EmulatedFileMetadata {
  id: string
  type: 'file'
  filename: string
  mime_type: string
  size_bytes: number
  created_at: string
  downloadable: boolean
}

interface StoredFile {
  metadata: EmulatedFileMetadata
  content: Buffer
}

/** Uploaded files, kept in memory, listed newest first. */
export class FileStore {
  readonly #files = new Map<string, StoredFile>()

  /** POST /v1/files (multipart/form-data, part `file`). */
  upload(exchange: Exchange): Promise<void> {
    const boundary = multipartBoundary(exchange.request.headers['content-type'])
    if (boundary === undefined) throw invalidRequest('Content-Type must be multipart/form-data with a boundary')
    let parts: ReturnType<typeof parseMultipart>
    try {
      parts = parseMultipart(exchange.body, boundary)
    } catch (error) {
      if (error instanceof MultipartError) throw invalidRequest(error.message)
      throw error
    }
    const part = parts.find((candidate) => candidate.name === 'file')
    if (part === undefined) throw invalidRequest('file: Field required')
    const metadata: EmulatedFileMetadata = {
      id: createId('file_'),
      type: 'file',
      filename: part.filename ?? 'upload',
      mime_type: part.contentType ?? 'application/octet-stream',
      size_bytes: part.data.length,
      created_at: new Date().toISOString(),
      downloadable: true,
    }
    // Copy so the stored file does not pin the whole multipart body.
    this.#files.set(metadata.id, { metadata, content: Buffer.from(part.data) })
    return exchange.sendJson(200, metadata)
  }

  /** GET /v1/files: `Page` fields plus `next_page` so `PageCursor` clients page too. */
  list(exchange: Exchange): Promise<void> {
    const newestFirst = [...this.#files.values()].map((file) => file.metadata).reverse()
    const page = paginate(newestFirst, exchange.query)
    return exchange.sendJson(200, { ...page, next_page: page.has_more ? page.last_id : null })
  }

  retrieve(exchange: Exchange, fileId: string): Promise<void> {
    return exchange.sendJson(200, this.#get(fileId).metadata)
  }

  /** GET /v1/files/{id}/content: the uploaded bytes, unchanged. */
  download(exchange: Exchange, fileId: string): Promise<void> {
    const file = this.#get(fileId)
    return exchange.send(200, file.metadata.mime_type, file.content)
  }

  delete(exchange: Exchange, fileId: string): Promise<void> {
    this.#get(fileId)
    this.#files.delete(fileId)
    return exchange.sendJson(200, { id: fileId, type: 'file_deleted' })
  }

  #get(fileId: string): StoredFile {
    const file = this.#files.get(fileId)
    if (file === undefined) throw notFound(`File not found: ${fileId}`)
    return file
  }
}
