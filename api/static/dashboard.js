'use strict';
// The operator's dashboard. Updates come from one Server-Sent Events stream, read with fetch() because
// EventSource cannot send the bearer header; when streaming fails, /api/admin/stats is polled instead.

const TOKEN_KEY = 'flashsale.adminToken';
const POLL_MS = 1000;
const POLL_BEFORE_STREAM_RETRY_MS = 15000;
const RATE_COLORS = { holds: '#2563eb', orders: '#ea580c' };

class Refused extends Error {}

const $ = (id) => document.getElementById(id);
let session = null; // the AbortController of the current connection
let latest = null; // the last stats shown, to redraw the chart on resize

const token = () => sessionStorage.getItem(TOKEN_KEY);
const authorization = () => ({ Authorization: `Bearer ${token()}` });

function setMode(mode, text) {
  $('mode').dataset.mode = mode;
  $('mode').textContent = text;
}

function refuse(reason) {
  session?.abort();
  session = null;
  $('live').hidden = true;
  $('login').hidden = false;
  $('forget').hidden = !token();
  $('refused').textContent = `Access refused: ${reason}`;
  setMode('off', 'not connected');
}

// 401: a missing or wrong token; 403: the server has no admin token configured.
async function checkAccess(response) {
  if (response.status !== 401 && response.status !== 403) return;
  const problem = await response.json().catch(() => ({}));
  throw new Refused(problem.detail || `the server answered ${response.status}`);
}

function onEvent(block) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
  }
  if (name === 'stats') show(JSON.parse(data.join('\n')));
  else if (name === 'problem') setMode('down', 'engine unavailable');
}

async function readStream(signal) {
  const response = await fetch('/api/admin/stream', { headers: authorization(), signal, cache: 'no-store' });
  await checkAccess(response);
  if (!response.ok || !response.body) throw new Error(`the stream answered ${response.status}`);
  setMode('stream', 'live (stream)');
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      onEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

async function poll(signal, forMs) {
  const until = Date.now() + forMs;
  while (!signal.aborted && Date.now() < until) {
    try {
      const response = await fetch('/api/admin/stats', { headers: authorization(), signal, cache: 'no-store' });
      await checkAccess(response);
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      show(await response.json());
      setMode('polling', 'live (polling)');
    } catch (error) {
      if (error instanceof Refused || signal.aborted) throw error;
      setMode('down', 'server not answering');
    }
    await sleep(POLL_MS);
  }
}

async function connect() {
  session?.abort();
  const signal = (session = new AbortController()).signal;
  $('login').hidden = true;
  $('refused').textContent = '';
  $('forget').hidden = false;
  setMode('connecting', 'connecting…');
  try {
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await readStream(signal); // the server ends each stream after a while: open the next at once
        if (Date.now() - started < 1000) await sleep(1000);
      } catch (error) {
        if (error instanceof Refused || signal.aborted) throw error;
        await poll(signal, POLL_BEFORE_STREAM_RETRY_MS); // then try the stream again
      }
    }
  } catch (error) {
    if (error instanceof Refused) refuse(error.message);
  }
}

// --- what the stats look like on the page ---------------------------------------------------------

// One row per product in a table's body: a row made from the template for a new product, the id and name filled
// in, the rest by fill(row, product); the rows of products no longer listed go.
function showProductRows(body, products, template, fill) {
  const rows = new Map([...body.rows].map((row) => [row.dataset.productId, row]));
  for (const p of products) {
    let row = rows.get(String(p.id));
    if (!row) {
      row = fromTemplate(template);
      row.dataset.productId = p.id;
      body.append(row);
    }
    rows.delete(String(p.id));
    part(row, 'id').textContent = p.id;
    part(row, 'name').textContent = p.name ?? '(not in the catalog)';
    fill(row, p);
  }
  for (const gone of rows.values()) gone.remove();
}

function showRows(products) {
  showProductRows($('stock').tBodies[0], products, 'row-template', (row, p) => {
    for (const field of ['total', 'available', 'held', 'pending', 'sold']) {
      row.querySelector(`td.${field}`).textContent = p[field];
      const share = p.total > 0 ? (100 * p[field]) / p.total : 0;
      if (field !== 'total') row.querySelector(`.bar .${field}`).style.width = `${share}%`;
    }
    part(row, 'bar').title =
      `available ${p.available}, held ${p.held}, pending ${p.pending}, sold ${p.sold} of ${p.total}`;
  });
}

function showQueues(products) {
  const withRoom = products.filter((p) => p.queue);
  $('queues').hidden = withRoom.length === 0;
  showProductRows($('queue-table').tBodies[0], withRoom, 'queue-row-template', (row, p) => {
    for (const field of ['waiting', 'admitted', 'used', 'expired', 'left']) part(row, field).textContent = p.queue[field];
    part(row, 'rate').textContent = p.queue.admissions_per_second.toFixed(1);
  });
}

function showVerdict(verdict, backlog) {
  $('verdict').textContent = verdict.status;
  $('verdict').dataset.status = verdict.status;
  let detail = verdict.detail || '';
  if (verdict.status === 'consistent') detail = 'Redis and the database agree.';
  if (verdict.status === 'behind') {
    detail = `The workers have not written everything yet (${backlog} events waiting): expected during a sale.`;
  }
  if (verdict.status === 'drifted') {
    const drifted = verdict.findings.filter((f) => f.status === 'drifted');
    const what = drifted.map((f) => {
      const fields = f.differences.map((d) =>
        d.field === 'payment_conflicts'
          ? `${d.durable} transaction id(s) also used by another order`
          : `${d.field} ${d.engine ?? '–'} in Redis, ${d.durable ?? '–'} in the database`,
      );
      return `product ${f.product_id}: ${fields.join('; ')} (remedy: ${f.remedy})`;
    });
    detail = `${what.join('. ')}. Run \`flashsale reconcile\` for the details.`;
  }
  $('verdict-detail').textContent = detail;
}

function showTotals(products) {
  const sum = (name) => products.reduce((total, p) => total + p.counts[name], 0);
  $('totals').textContent = `${sum('holds')} holds · ${sum('orders')} orders · ${sum('paid')} paid`;
  $('totals-detail').textContent =
    `refused: ${sum('out_of_stock')} sold out, ${sum('limit')} over the limit; ` +
    `${sum('expired')} holds expired, ${sum('released')} released; ` +
    `${sum('payment_failed')} payments failed, ${sum('order_expired')} orders expired unpaid; ` +
    `${sum('duplicate')} duplicate webhooks`;
  const refunds = sum('refund_required');
  $('refunds').textContent = refunds;
  $('refunds').dataset.status = refunds > 0 ? 'drifted' : 'consistent';
  $('refunds-detail').textContent = refunds
    ? 'successful payments no order took (cancelled, or already paid): run `flashsale refunds` for the list'
    : 'no customer was charged for nothing';
}

function showMerchant(merchant) {
  const d = merchant.deliveries;
  if (!d) {
    $('deliveries').textContent = '–';
    $('deliveries').dataset.status = 'unknown';
    $('deliveries-detail').textContent = 'the database did not answer';
    return;
  }
  $('deliveries').textContent = `${d.failed} dead-lettered`;
  $('deliveries').dataset.status = d.failed > 0 ? 'drifted' : 'consistent';
  $('deliveries-detail').textContent =
    `${d.pending} waiting, ${d.delivered} delivered; ${merchant.refunds_open} refund(s) open` +
    (d.failed > 0 ? ': run `flashsale deliveries --failed`, then `flashsale deliveries retry`' : '');
}

function drawRates(stats) {
  const points = stats.rates.points;
  const series = ['holds', 'orders'].map((name) => ({
    name,
    color: RATE_COLORS[name],
    values: points.map((point) => [point.at, point[name]]),
  }));
  // The window grows with the history this server has, from one minute up to the full window.
  const end = Date.parse(stats.at);
  const span = points.length ? end - points[0].at : 0;
  const windowMs = Math.min(stats.rates.window_seconds * 1000, Math.max(60000, span));
  drawLineChart($('rates'), series, end, windowMs);
  const last = points[points.length - 1];
  $('rates-window').textContent = last
    ? `· now ${last.holds} holds/s and ${last.orders} orders/s, a point every ${stats.rates.interval_seconds} s`
    : '· the first rates appear after a few seconds';
}

function show(stats) {
  latest = stats;
  $('live').hidden = false;
  $('login').hidden = true;
  $('backlog').textContent = stats.outbox_backlog;
  showVerdict(stats.reconcile, stats.outbox_backlog);
  showTotals(stats.products);
  showMerchant(stats.merchant);
  showRows(stats.products);
  showQueues(stats.products);
  drawRates(stats);
  $('updated').textContent = `Updated ${new Date(stats.at).toLocaleTimeString()} (version ${stats.version}).`;
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
  connect();
});

$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  refuse('the token was forgotten; paste it again to continue.');
});

window.addEventListener('resize', () => latest && drawRates(latest));

if (token()) connect();
else refuse('this page needs the admin token.');
