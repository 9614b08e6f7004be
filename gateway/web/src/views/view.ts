// What a page is: it builds itself into <main>, and reloads its data when
// asked (on navigation, when the session changes, and — unless it is live,
// pushed by the gateway — every few seconds while the page is visible).

import type { Params } from "../router";

export interface View {
  /** The document title's first part. */
  title: string;
  /** Builds the page's skeleton into `main`. */
  mount(main: HTMLElement): void;
  /** Fetches the data and fills the page in. */
  refresh(): Promise<void>;
  /** Set when the gateway pushes the page's changes: no periodic reload. */
  live?: boolean;
  /** Called when the reader leaves the page (closes its live stream). */
  unmount?(): void;
}

/** A page of the router's table: makes a view for the path's parameters. */
export type Page = (params: Params) => View;

/**
 * Renders `key`'s content into `el` only when `data` changed since the last
 * time: a refresh that changes nothing keeps the DOM, and so the reader's
 * focus and scroll position.
 */
export function renderIfChanged<T>(el: HTMLElement, data: T, render: (data: T) => void): void {
  const json = JSON.stringify(data);
  if (el.dataset.rendered === json) return;
  el.dataset.rendered = json;
  render(data);
}
