/** Progress of a long operation, reported through an `onProgress` callback. */
export type ProgressEvent =
  | { readonly kind: 'blob'; readonly digest: string; readonly done: number; readonly total: number; readonly label?: string }
  | { readonly kind: 'blob-done'; readonly digest: string; readonly total: number; readonly skipped: boolean }
  | { readonly kind: 'step'; readonly step: string; readonly detail?: string }
  /** A transfer of `total` bytes (every blob it names, present ones included) starts: the overall bar. */
  | { readonly kind: 'transfer'; readonly total: number; readonly items: number }
  /** The blobs that flow from now on belong to `name` (a target, an image). */
  | { readonly kind: 'item'; readonly name: string };

export type OnProgress = (event: ProgressEvent) => void;
