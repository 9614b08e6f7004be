// The gateway's HTTP API, same origin. Artist calls ride on the
// `lumen_session` cookie (HttpOnly: this code never sees the token), and
// the browser adds the `Origin` header the gateway checks on POSTs.

import { ApiError } from "./errors";
import type {
  ApiErrorBody,
  ExplorerLinks,
  ExplorerTx,
  Info,
  Leaderboard,
  JobSpecTypedData,
  JobView,
  Market,
  NetworkStats,
  NodeView,
  SessionView,
  SignIn,
  SiweChallenge,
  UploadedBlend,
} from "./types";
import type { ExplorerAddress, ExplorerJob, OperatorView, TokenInfo } from "./types";

async function failure(path: string, response: Response): Promise<ApiError> {
  let body: Partial<ApiErrorBody> = {};
  try {
    body = (await response.json()) as Partial<ApiErrorBody>;
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  return new ApiError(path, response.status, body.code ?? "http_" + response.status, body.error ?? response.statusText);
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(path, { credentials: "same-origin", ...init });
  if (!response.ok) throw await failure(path, response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** Like `call`, but `null` when the caller is not signed in (401). */
async function callSignedIn<T>(path: string): Promise<T | null> {
  try {
    return await call<T>(path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

function post<T>(path: string, body?: unknown): Promise<T> {
  return call<T>(path, {
    method: "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
  });
}

/** Like `call`, but `null` when there is nothing at `path` (404). */
async function callOrNull<T>(path: string): Promise<T | null> {
  try {
    return await call<T>(path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/** How far an upload got: bytes sent of the total. */
export type UploadProgress = (sent: number, total: number) => void;

/**
 * `POST /api/v1/blends` with the file as the raw body, through
 * XMLHttpRequest: `fetch` cannot report upload progress. Same origin, so the
 * session cookie and the `Origin` header go along. Rejects with `ApiError`
 * when the gateway refuses, a `TypeError` when nothing answers, and a
 * `DOMException` named `AbortError` when `signal` aborts it.
 */
function uploadBlend(file: Blob, progress: UploadProgress, signal?: AbortSignal): Promise<UploadedBlend> {
  const path = "/api/v1/blends";
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const aborted = (): void => xhr.abort();
    signal?.addEventListener("abort", aborted, { once: true });
    const done = (): void => signal?.removeEventListener("abort", aborted);
    xhr.open("POST", path);
    xhr.responseType = "text";
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (event) => progress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onload = () => {
      done();
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON (a proxy's error page): the status says enough.
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        resolve(body as UploadedBlend);
        return;
      }
      const error = (body ?? {}) as Partial<ApiErrorBody>;
      reject(
        new ApiError(path, xhr.status, error.code ?? "http_" + xhr.status, error.error ?? (xhr.statusText || "no answer")),
      );
    };
    xhr.onerror = () => {
      done();
      reject(new TypeError("network error: the upload did not reach the gateway"));
    };
    xhr.onabort = () => {
      done();
      reject(new DOMException("the upload was cancelled", "AbortError"));
    };
    xhr.send(file);
  });
}

export const api = {
  info: () => call<Info>("/api/v1/info"),
  stats: () => call<NetworkStats>("/api/v1/stats"),
  nodes: () => call<NodeView[]>("/api/v1/nodes"),
  /** The signed-in artist's jobs; `null` when nobody is signed in. */
  myJobs: () => callSignedIn<JobView[]>("/api/v1/jobs"),
  /** One of the signed-in artist's jobs; `null` when nobody is signed in. */
  job: (id: number) => callSignedIn<JobView>(`/api/v1/jobs/${id}`),
  nonce: () => call<SiweChallenge>("/api/v1/auth/nonce"),
  signIn: (body: SignIn) => post<SessionView>("/api/v1/auth/siwe", body),
  /** The current session; `null` when nobody is signed in. */
  session: () => callSignedIn<SessionView>("/api/v1/auth/session"),
  logout: () => post<void>("/api/v1/auth/logout"),
  explorerLinks: () => call<ExplorerLinks>("/api/v1/explorer"),
  leaderboard: () => call<Leaderboard>("/api/v1/leaderboard"),
  explorerTx: (hash: string) => call<ExplorerTx>(`/api/v1/explorer/tx/${encodeURIComponent(hash)}`),
  explorerAddress: (address: string) =>
    call<ExplorerAddress>(`/api/v1/explorer/address/${encodeURIComponent(address)}`),
  explorerJob: (id: number) => call<ExplorerJob>(`/api/v1/explorer/jobs/${id}`),
  /** An owner's nodes and what it can withdraw now (public). */
  operator: (owner: string) => call<OperatorView>(`/api/v1/operators/${encodeURIComponent(owner)}`),
  /** The native coin and the accepted tokens, with their symbols and decimals. */
  tokens: () => call<TokenInfo[]>("/api/v1/tokens"),
  /** The jobs this gateway accepts: tokens with their lowest prices, most frames, least time to the deadline. */
  market: () => call<Market>("/api/v1/market"),
  /** The EIP-712 domain and types of a job spec on this gateway's chain and escrow. */
  jobSpecTypes: () => call<JobSpecTypedData>("/api/v1/typed-data/job-spec"),
  /** The signed-in artist's own earlier upload of the file with this blake3 hash; `null` when there is none. */
  ownBlend: (hash: string) => callOrNull<UploadedBlend>(`/api/v1/blends/${encodeURIComponent(hash)}`),
  uploadBlend,
  /** `POST /api/v1/jobs` with a `RegisterJob` body already serialized (`registerJobBody`: its price is a raw u128). */
  registerJob: (body: string) =>
    call<JobView>("/api/v1/jobs", { method: "POST", headers: { "content-type": "application/json" }, body }),
};
