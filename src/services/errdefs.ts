/**
 * Error kinds with containerd's semantics (errdefs/errors.go, errdefs/grpc.go in containerd 1.6).
 *
 * containerd errors are plain messages wrapping a sentinel whose text ends the message
 * ("snapshot x does not exist: not found"). We keep that shape so a containerd client that
 * calls errdefs.FromGRPC on our status recovers the same class and message.
 */

export type ErrorKind =
  | 'Unknown'
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'NotImplemented'
  | 'Canceled'
  | 'DeadlineExceeded';

/** The sentinel text containerd appends for each kind (errdefs.ErrX.Error()). */
export const KIND_TEXT: Readonly<Record<ErrorKind, string>> = {
  Unknown: 'unknown',
  InvalidArgument: 'invalid argument',
  NotFound: 'not found',
  AlreadyExists: 'already exists',
  FailedPrecondition: 'failed precondition',
  Unavailable: 'unavailable',
  NotImplemented: 'not implemented',
  Canceled: 'context canceled',
  DeadlineExceeded: 'context deadline exceeded',
};

/** gRPC status codes (grpc/codes) used by containerd's ToGRPC mapping. */
export const GRPC_CODE: Readonly<Record<ErrorKind, number>> = {
  Unknown: 2,
  InvalidArgument: 3,
  NotFound: 5,
  AlreadyExists: 6,
  FailedPrecondition: 9,
  Unavailable: 14,
  NotImplemented: 12,
  Canceled: 1,
  DeadlineExceeded: 4,
};

const KIND_BY_CODE: ReadonlyMap<number, ErrorKind> = new Map(
  (Object.entries(GRPC_CODE) as [ErrorKind, number][]).map(([k, c]) => [c, k]),
);

/** Where an error happened: snapshot key, tar entry, byte offset, path… */
export type ErrorContext = Record<string, string | number | bigint | boolean | undefined>;

export class WinsnapError extends Error {
  readonly kind: ErrorKind;
  readonly context: ErrorContext;
  /** The message without the kind suffix. */
  readonly detail: string;

  constructor(kind: ErrorKind, detail: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    const suffix = KIND_TEXT[kind];
    const message = detail === '' ? suffix : detail.endsWith(`: ${suffix}`) ? detail : `${detail}: ${suffix}`;
    super(message, options);
    this.name = 'WinsnapError';
    this.kind = kind;
    this.detail = detail;
    this.context = context;
  }

  /** A new error of the same kind with a prefix, containerd's `fmt.Errorf("ctx: %w", err)`. */
  wrap(prefix: string, context: ErrorContext = {}): WinsnapError {
    return new WinsnapError(this.kind, `${prefix}: ${this.detail}`, { ...this.context, ...context }, { cause: this });
  }
}

function make(kind: ErrorKind) {
  return (detail: string, context?: ErrorContext, cause?: unknown): WinsnapError =>
    new WinsnapError(kind, detail, context, cause === undefined ? undefined : { cause });
}

export const notFound = make('NotFound');
export const alreadyExists = make('AlreadyExists');
export const invalidArgument = make('InvalidArgument');
export const failedPrecondition = make('FailedPrecondition');
export const notImplemented = make('NotImplemented');
export const unavailable = make('Unavailable');
export const unknownError = make('Unknown');

export function isWinsnapError(err: unknown): err is WinsnapError {
  return err instanceof WinsnapError;
}

/** The kind of any thrown value; node fs errors map to the closest containerd kind. */
export function kindOf(err: unknown): ErrorKind {
  if (err instanceof WinsnapError) return err.kind;
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'NotFound';
    case 'EEXIST':
      return 'AlreadyExists';
    case 'ENOTEMPTY':
    case 'EBUSY':
      return 'FailedPrecondition';
    case 'ABORT_ERR':
      return 'Canceled';
    default:
      return 'Unknown';
  }
}

export const isNotFound = (e: unknown): boolean => kindOf(e) === 'NotFound';
export const isAlreadyExists = (e: unknown): boolean => kindOf(e) === 'AlreadyExists';
export const isInvalidArgument = (e: unknown): boolean => kindOf(e) === 'InvalidArgument';
export const isFailedPrecondition = (e: unknown): boolean => kindOf(e) === 'FailedPrecondition';
export const isNotImplemented = (e: unknown): boolean => kindOf(e) === 'NotImplemented';
export const isUnavailable = (e: unknown): boolean => kindOf(e) === 'Unavailable';

/** Normalise any thrown value to a WinsnapError (keeps the original as cause). */
export function toWinsnapError(err: unknown, prefix?: string): WinsnapError {
  let out: WinsnapError;
  if (err instanceof WinsnapError) out = err;
  else {
    const msg = err instanceof Error ? err.message : String(err);
    out = new WinsnapError(kindOf(err), msg, {}, { cause: err });
  }
  return prefix === undefined ? out : out.wrap(prefix);
}

/** gRPC status code → error, as containerd's errdefs.FromGRPC (the kind text suffix is trimmed). */
export function fromGrpc(code: number, message: string): WinsnapError {
  const kind = KIND_BY_CODE.get(code) ?? 'Unknown';
  const suffix = `: ${KIND_TEXT[kind]}`;
  let detail = message;
  if (detail === KIND_TEXT[kind]) detail = '';
  else if (detail.endsWith(suffix)) detail = detail.slice(0, -suffix.length);
  return new WinsnapError(kind, detail);
}

/** Error → gRPC status code and message, as containerd's errdefs.ToGRPC. */
export function toGrpc(err: unknown): { code: number; message: string } {
  const e = toWinsnapError(err);
  return { code: GRPC_CODE[e.kind], message: e.message };
}
