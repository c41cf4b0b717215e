import type { Address } from '../../topology/address.ts';

/** The URLs the edge caches: static files (content-hashed) and photo variants (an id's variants never change). */
export const edgeCacheable = String.raw`^/(static/|media/photos/[A-Za-z0-9_-]+/(thumb|display)\.webp$)`;

export interface EdgeVcl {
  /** Where it fetches what it does not hold: its data center's balancer (its PROXY-protocol port). */
  origin: Address;
  /** The addresses PURGE is accepted from (the topology's own). */
  purgers: string[];
  /** And the token a PURGE must carry (the topology's secret). */
  purgeToken: string;
}

/**
 * The edge's VCL. Only `edgeCacheable` URLs are looked up, with the request's
 * cookies and Authorization dropped first (so no private object can be cached
 * and no session reaches a cached one); everything else (pages, the API)
 * passes through to the origin uncached. TTLs come from the origin's
 * Cache-Control; only a 200 is kept. Each photo variant carries its photo's
 * xkey tag (`photo-<id>`), so one PURGE with `xkey-purge: photo-<id>` drops
 * all of them; PURGE needs a topology address and the purge token. Grace: an
 * object past its TTL is served for 24 h while the origin is sick (10 s while
 * it is healthy). When the origin is down, a page the edge cannot serve says
 * so plainly (503, "degraded").
 */
export function edgeVcl(o: EdgeVcl): string {
  const acl = o.purgers.map((h) => `    "${h}";`).join('\n');
  return `vcl 4.1;
import std;
import xkey;

backend origin {
    .host = "${o.origin.host}";
    .port = "${o.origin.port}";
    .proxy_header = 1;
    .connect_timeout = 1s;
    .first_byte_timeout = 15s;
    .between_bytes_timeout = 15s;
    .probe = {
        .url = "/healthz";
        .interval = 1s;
        .timeout = 500ms;
        .window = 3;
        .threshold = 2;
    }
}

acl purgers {
${acl}
}

sub vcl_recv {
    if (req.url == "/.edge/health") {
        return (synth(200, "edge ok"));
    }
    if (req.method == "PURGE") {
        if (client.ip !~ purgers || req.http.X-Purge-Token != "${o.purgeToken}") {
            return (synth(403, "PURGE not allowed"));
        }
        if (req.http.xkey-purge) {
            set req.http.X-Purged = xkey.purge(req.http.xkey-purge);
            return (synth(200, "purged " + req.http.X-Purged));
        }
        return (purge);
    }
    unset req.http.X-Purge-Token;
    if (req.url ~ "${edgeCacheable}" && (req.method == "GET" || req.method == "HEAD")) {
        unset req.http.Cookie;
        unset req.http.Authorization;
        if (std.healthy(req.backend_hint)) {
            set req.grace = 10s;
        } else {
            set req.grace = 24h;
        }
        return (hash);
    }
    return (pass);
}

sub vcl_backend_response {
    if (bereq.uncacheable) {
        return (deliver);
    }
    if (beresp.status != 200) {
        # A 404 (a photo not ready, deleted) is never kept: the next request asks the origin again.
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        return (deliver);
    }
    unset beresp.http.Set-Cookie;
    if (bereq.url ~ "^/media/photos/") {
        set beresp.http.xkey = "photo-" + regsub(bereq.url, "^/media/photos/([^/]+)/.*$", "\\1");
    }
    set beresp.grace = 24h;
    return (deliver);
}

sub vcl_backend_error {
    set beresp.http.Content-Type = "text/html; charset=utf-8";
    set beresp.http.Cache-Control = "no-store";
    set beresp.http.Retry-After = "5";
    synthetic({"<!doctype html><html><head><title>scaleout is degraded</title></head><body><h1>The site is degraded</h1><p>Our servers do not answer right now. Photos you have seen recently may still load; try again in a minute.</p></body></html>"});
    return (deliver);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.xkey;
    unset resp.http.Via;
    unset resp.http.X-Varnish;
}

sub vcl_synth {
    if (resp.status == 503) {
        set resp.http.Content-Type = "text/html; charset=utf-8";
        set resp.http.Retry-After = "5";
    }
}
`;
}
