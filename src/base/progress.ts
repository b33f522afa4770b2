/** Progress of a long operation, reported through an `onProgress` callback. */
export type ProgressEvent =
  | { readonly kind: 'blob'; readonly digest: string; readonly done: number; readonly total: number; readonly label?: string }
  | { readonly kind: 'blob-done'; readonly digest: string; readonly total: number; readonly skipped: boolean }
  | { readonly kind: 'step'; readonly step: string; readonly detail?: string };

export type OnProgress = (event: ProgressEvent) => void;
