// Hash routing: `#/`, `#/jobs/7`, … A page is a pattern and a view; later
// pages (upload, operator, explorer) add a line to the table in `main.ts`.
// Hash routes need nothing from the server: every page is `/`.

/** Parameters taken from the path (`/jobs/:id` → `{ id: "7" }`). */
export type Params = Record<string, string>;

export interface Route<V> {
  /** `/jobs/:id`: literal segments and `:name` placeholders. */
  path: string;
  view: V;
}

export interface Match<V> {
  route: Route<V>;
  params: Params;
}

/** The path a location hash names: `#/jobs/7?x` → `/jobs/7`; empty → `/`. */
export function hashPath(hash: string): string {
  let path = hash.startsWith("#") ? hash.slice(1) : hash;
  path = path.split("?")[0] ?? "";
  if (!path.startsWith("/")) path = "/" + path;
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  return path;
}

/** The first route whose pattern matches `path`, with its parameters. */
export function matchRoute<V>(routes: readonly Route<V>[], path: string): Match<V> | null {
  const segments = path.split("/").filter(Boolean);
  for (const route of routes) {
    const pattern = route.path.split("/").filter(Boolean);
    if (pattern.length !== segments.length) continue;
    const params: Params = {};
    let ok = true;
    for (let i = 0; i < pattern.length; i++) {
      const want = pattern[i] as string;
      const got = segments[i] as string;
      if (want.startsWith(":")) {
        try {
          params[want.slice(1)] = decodeURIComponent(got);
        } catch {
          ok = false;
          break;
        }
      } else if (want !== got) {
        ok = false;
        break;
      }
    }
    if (ok) return { route, params };
  }
  return null;
}

/** The hash link to `path` (`/jobs/7` → `#/jobs/7`). */
export function href(path: string): string {
  return "#" + (path.startsWith("/") ? path : "/" + path);
}
