// Chapter 1.5, fallback to the origin: an image that fails from the CDN edge
// loads from the origin instead (the page names it in <meta name="media-origin">).
(() => {
  var meta = document.querySelector('meta[name="media-origin"]');
  if (!meta?.content) return;
  var origin = meta.content.replace(/\/$/, '');
  function retry(img) {
    if (img.getAttribute('data-fell-back')) return;
    var url = new URL(img.getAttribute('src') || '', location.href);
    if (url.origin === origin) return;
    img.setAttribute('data-fell-back', '1');
    img.src = origin + url.pathname + url.search;
  }
  // Registered before the body is parsed: every image's error event is caught (they do not bubble; capture does).
  document.addEventListener(
    'error',
    (event) => {
      var t = event.target;
      if (t && t.tagName === 'IMG') retry(t);
    },
    true,
  );
})();
