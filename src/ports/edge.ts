/**
 * The CDN edge as the app sees it: where image URLs point, and how a photo's
 * cached objects are dropped from every edge. Without an edge: the origin
 * serves images itself and a purge does nothing.
 */
export interface Edge {
  /** False for no edge at all (nothing to purge). */
  readonly enabled: boolean;
  /** The base of image URLs now: the edge's while it answers, else the origin's (undefined: relative URLs). */
  mediaBase(): string | undefined;
  /** Every base an image URL may have (the page's Content-Security-Policy lists them). */
  mediaHosts(): string[];
  /** The origin's base, where a page's images fall back to when the edge fails them. */
  origin(): string | undefined;
  /** Drops every object tagged `tag` (a photo's variants: `photo-<id>`) from every edge. */
  purge(tag: string): Promise<void>;
  close(): Promise<void>;
}

export const noEdge: Edge = {
  enabled: false,
  mediaBase: () => undefined,
  mediaHosts: () => [],
  origin: () => undefined,
  purge: async () => {},
  close: async () => {},
};
