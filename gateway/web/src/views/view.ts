// What a page is: it builds itself into <main>, and reloads its data when
// asked: on navigation, when the session changes, and when the gateway's
// change feed says a part of the network it shows moved (`reloadOn`). No
// page reloads on a timer.

import type { Params } from "../router";
import type { ChangePart } from "../types";

export interface View {
  /** The document title's first part. */
  title: string;
  /** Builds the page's skeleton into `main`. */
  mount(main: HTMLElement): void;
  /** Fetches the data and fills the page in. */
  refresh(): Promise<void>;
  /**
   * The parts of the network the page shows: it reloads when the change
   * feed says one moved. None: the page follows its own stream (the job
   * page) or shows nothing that moves by itself.
   */
  reloadOn?: readonly ChangePart[];
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

/**
 * Runs `render`, which replaces `el`'s content, and gives the keyboard
 * focus back to the element that had it, found again by its `data-focus`
 * key (and its rank among elements with the same key): a page that
 * re-renders a table every few seconds does not throw the reader out of it.
 */
export function keepingFocus(el: HTMLElement, render: () => void): void {
  const active = document.activeElement;
  let key: string | null = null;
  let rank = 0;
  if (active instanceof HTMLElement && el.contains(active) && active.dataset.focus) {
    key = active.dataset.focus;
    rank = [...el.querySelectorAll<HTMLElement>("[data-focus]")]
      .filter((e) => e.dataset.focus === key)
      .indexOf(active);
  }
  render();
  if (key === null) return;
  const same = [...el.querySelectorAll<HTMLElement>("[data-focus]")].filter((e) => e.dataset.focus === key);
  (same[rank] ?? same[0])?.focus();
}
