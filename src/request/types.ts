// What sniff.ts extracts from a request head. Built once per connection, read by route.ts and keys.ts.

export interface RequestHead {
  /** Upper-case method as sent. */
  readonly method: string
  /** The request-target exactly as sent. */
  readonly target: string
  /** The path used for routing: origin-form path, percent-decoded where decoding is safe. */
  readonly path: string
  /** '' or the query string including '?'. */
  readonly query: string
  /** Host header (or absolute-form authority), lower-cased, without port; '' when absent (HTTP/1.0). */
  readonly host: string
  readonly versionMajor: number
  readonly versionMinor: number
  /** Flat list as received: [name0, value0, name1, value1, ...]; names in their original case. */
  readonly headers: readonly string[]
  /** Bytes from the start of the connection to the end of the blank line that ends the head. */
  readonly headBytes: number
}

export type SniffResult =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'reject'; readonly status: 400 | 431 | 505; readonly reason: string }
  | { readonly kind: 'ok'; readonly head: RequestHead }
