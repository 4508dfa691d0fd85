/**
 * The live view page: one self-contained HTML document (no CDN, no build step). It lists scans,
 * shows the latest (or a chosen) slice with the dendrite mask over it, the mask's side projections
 * and the alert timeline, and follows the daemon through server-sent events (`/api/events`).
 */
export const VIEW_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>xct-sentinel live view</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; display: flex; height: 100vh; color: #222; }
  nav { width: 240px; border-right: 1px solid #ccc; overflow-y: auto; padding: 8px; box-sizing: border-box; }
  nav h1 { font-size: 16px; margin: 0 0 8px; }
  #scans { list-style: none; margin: 0; padding: 0; }
  #scans li { padding: 6px; border-radius: 4px; cursor: pointer; margin-bottom: 4px; background: #f4f4f4; }
  #scans li.selected { background: #dde8ff; }
  #scans .meta { font-size: 12px; color: #555; }
  main { flex: 1; display: flex; gap: 12px; padding: 8px; overflow: auto; }
  .column { display: flex; flex-direction: column; gap: 8px; }
  #stack { position: relative; width: 512px; height: 512px; background: #000; }
  #stack img { position: absolute; inset: 0; width: 100%; height: 100%; image-rendering: pixelated; }
  #box { position: absolute; border: 2px solid #ffd400; display: none; pointer-events: none; }
  .side img { image-rendering: pixelated; background: #111; display: block; }
  #mipxz { width: 256px; height: 160px; } #mipyz { width: 160px; height: 256px; }
  #alerts { list-style: none; margin: 0; padding: 0; max-height: 560px; overflow-y: auto; width: 360px; }
  #alerts li { padding: 6px; margin-bottom: 4px; border-left: 4px solid #999; background: #f7f7f7; cursor: pointer; }
  #alerts li.warning { border-color: #e69500; } #alerts li.critical { border-color: #d00; } #alerts li.info { border-color: #3a7; }
  label { user-select: none; }
</style>
</head>
<body>
<nav><h1>xct-sentinel</h1><ul id="scans"></ul></nav>
<main>
  <div class="column">
    <div id="title">no scan yet</div>
    <div id="stack"><img id="image" alt="slice"><img id="mask" alt="dendrite mask"><div id="box"></div></div>
    <div>
      <label><input type="checkbox" id="overlay" checked> mask</label>
      <label>opacity <input type="range" id="opacity" min="0" max="100" value="60"></label>
      <label><input type="checkbox" id="follow" checked> follow the scanner</label>
    </div>
    <div><input type="range" id="slider" min="0" max="0" value="0" style="width: 512px"> slice <span id="z">–</span></div>
  </div>
  <div class="column side">
    <div>mask, side view x–z (z down)</div><img id="mipxz" alt="x-z projection">
    <div>mask, side view y–z (z across)</div><img id="mipyz" alt="y-z projection">
  </div>
  <div class="column"><div>alerts</div><ul id="alerts"></ul></div>
</main>
<script>
const scans = new Map();
let selected = null;
let slices = [];
let box = null;
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

function renderScans() {
  const ul = $('scans');
  ul.replaceChildren(...[...scans.values()].map((s) => {
    const li = document.createElement('li');
    li.dataset.scan = s.scanId;
    li.className = s.scanId === selected ? 'selected' : '';
    const expected = s.expectedSlices ? ' / ' + s.expectedSlices : '';
    li.innerHTML = '<div class="name"></div><div class="meta"><span class="processed">' + s.processed + '</span>' + expected +
      ' slices · ' + s.slicesPerSecond.toFixed(1) + ' slices/s · <span class="alert-count">' + s.alerts + '</span> alerts' +
      (s.complete ? ' · done' : ' · live') + '</div>';
    li.querySelector('.name').textContent = s.scanId;
    li.onclick = () => select(s.scanId);
    return li;
  }));
}

async function select(scanId) {
  selected = scanId;
  renderScans();
  const alerts = await (await fetch('/api/scans/' + enc(scanId) + '/alerts')).json();
  $('alerts').replaceChildren();
  for (const a of alerts) addAlert(a);
  update(scans.get(scanId));
}

function update(s) {
  if (!s || s.scanId !== selected) return;
  $('title').textContent = s.scanId + ': ' + s.processed + (s.expectedSlices ? ' of ' + s.expectedSlices : '') + ' slices';
  const slider = $('slider');
  slider.max = String(Math.max(0, s.lastSlice ?? 0));
  if ($('follow').checked && s.lastSlice !== null) { box = null; show(s.lastSlice); }
  const t = Date.now();
  $('mipxz').src = '/api/scans/' + enc(s.scanId) + '/mip/xz.png?t=' + t;
  $('mipyz').src = '/api/scans/' + enc(s.scanId) + '/mip/yz.png?t=' + t;
}

function show(z) {
  $('slider').value = String(z);
  $('z').textContent = String(z);
  const base = '/api/scans/' + enc(selected);
  $('image').src = base + '/slice/' + z + '.png';
  $('mask').src = base + '/mask/' + z + '.png';
  const s = scans.get(selected);
  const b = $('box');
  if (box && s && z >= box.zMin && z <= box.zMax) {
    const k = 512 / Math.max(s.width, s.height);
    b.style.left = box.xMin * k + 'px'; b.style.top = box.yMin * k + 'px';
    b.style.width = (box.xMax - box.xMin + 1) * k + 'px'; b.style.height = (box.yMax - box.yMin + 1) * k + 'px';
    b.style.display = 'block';
  } else b.style.display = 'none';
}

function addAlert(a) {
  if (a.scanId !== selected) return;
  const li = document.createElement('li');
  li.className = a.severity;
  li.dataset.alertId = a.alertId;
  li.dataset.slice = String(a.sliceRange.last);
  li.textContent = new Date(a.raisedAt).toLocaleTimeString() + ' ' + a.severity.toUpperCase() + ': ' +
    a.heightUm.toFixed(1) + ' µm (' + Math.round(a.heightFraction * 100) + '%) into the electrolyte, slices ' +
    a.sliceRange.first + '–' + a.sliceRange.last + ', ' + a.voxelCount + ' voxels';
  li.onclick = () => {
    $('follow').checked = false;
    box = a.bbox ? a.bbox.voxels : null;
    show(a.sliceRange.last);
  };
  $('alerts').append(li);
}

$('slider').oninput = (e) => { $('follow').checked = false; show(Number(e.target.value)); };
$('overlay').onchange = (e) => { $('mask').style.display = e.target.checked ? 'block' : 'none'; };
$('opacity').oninput = (e) => { $('mask').style.opacity = String(Number(e.target.value) / 100); };
$('mask').style.opacity = '0.6';

(async () => {
  for (const s of await (await fetch('/api/scans')).json()) scans.set(s.scanId, s);
  renderScans();
  if (scans.size) select([...scans.keys()][0]);
  const events = new EventSource('/api/events');
  events.addEventListener('scan', (e) => {
    const s = JSON.parse(e.data);
    const fresh = !scans.has(s.scanId);
    scans.set(s.scanId, s);
    renderScans();
    if (selected === null || (fresh && $('follow').checked)) select(s.scanId);
    else update(s);
  });
  events.addEventListener('alert', (e) => {
    const a = JSON.parse(e.data);
    const s = scans.get(a.scanId);
    if (s) { s.alerts++; renderScans(); }
    addAlert(a);
  });
})();
</script>
</body>
</html>
`;
