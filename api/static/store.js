'use strict';
// The demo storefront. It uses the public API only (plus the demo payment provider), and asks for the
// products once a second, so availability and "sold out" show up without a reload.

const POLL_MS = 1000;
const ORDER_POLL_MS = 500;
const ORDER_WAIT_MS = 30000;

const shopper = shopperId();
const cards = new Map(); // product id -> {element, product}
const purchases = []; // what this tab bought: {hold, order, phase, message, element}

function shopperId() {
  // One customer id per tab: max_per_customer applies to it.
  let id = sessionStorage.getItem('flashsale.shopper');
  if (!id) {
    id = 'shopper-' + Math.random().toString(36).slice(2, 8);
    sessionStorage.setItem('flashsale.shopper', id);
  }
  return id;
}

// The shop's login: the demo identity provider signs a buyer token for this tab's shopper. With buyer tokens on
// (FLASHSALE_BUYER_AUTH=jwt, as under `make up`) every hold and order call carries it; where the server has no
// demo login, the shopper names itself in customer_id alone.
let login = null; // {token, expires_at} once logged in, or 'none' when the server has no demo login
const LOGIN_MARGIN_MS = 60000;

async function buyerHeaders() {
  if (login === 'none') return {};
  if (!login || Date.parse(login.expires_at) - serverNow() < LOGIN_MARGIN_MS) {
    try {
      login = await api('POST', '/api/demo/login', { name: shopper });
    } catch (error) {
      if (!(error instanceof ApiProblem) || error.status !== 403) throw error;
      login = 'none';
      return {};
    }
  }
  return { Authorization: `Bearer ${login.token}` };
}

async function buyer(method, path, body, extra = {}) {
  try {
    return await api(method, path, body, { ...(await buyerHeaders()), ...extra });
  } catch (error) {
    // A token the server no longer takes (it restarted with another secret): log in again, once.
    if (!(error instanceof ApiProblem) || error.code !== 'invalid_buyer_token' || login === 'none') throw error;
    login = null;
    return api(method, path, body, { ...(await buyerHeaders()), ...extra });
  }
}

function refusal(problem) {
  switch (problem.code) {
    case 'out_of_stock':
      return problem.body.available ? `Only ${problem.body.available} left.` : 'Sold out.';
    case 'limit_exceeded':
      return `Limit reached: at most ${problem.body.limit} per customer.`;
    case 'sale_not_active':
      return 'The sale is not open right now.';
    case 'hold_expired':
      return 'Your hold expired: the unit went back on sale.';
    case 'hold_released':
      return 'You released this hold.';
    case 'rate_limited':
      return 'Too many requests: try again in a moment.';
    case 'admission_required':
      return 'Your turn in the queue is over: join the queue again.';
    case 'waiting_room_off':
      return 'This product has no queue any more: press Buy.';
    case 'order_not_pending':
      return `The order is already ${problem.body.order_status}.`;
    default:
      return problem.detail || 'Something went wrong; try again.';
  }
}

// --- products ---------------------------------------------------------------------------------------

function saleWindow(product, now) {
  const starts = product.sale_starts_at ? Date.parse(product.sale_starts_at) : null;
  const ends = product.sale_ends_at ? Date.parse(product.sale_ends_at) : null;
  if (starts && now < starts) return { open: false, state: 'Coming soon', text: `Sale starts in ${duration(starts - now)}` };
  if (ends && now >= ends) return { open: false, state: 'Sale ended', text: 'The sale is over.' };
  return { open: true, state: 'On sale', text: ends ? `Sale ends in ${duration(ends - now)}` : 'On sale now, no end set.' };
}

// --- the waiting room: join, poll as the server asks (Retry-After), buy once admitted ------------------

function queueText(ticket) {
  switch (ticket.state) {
    case 'waiting':
      if (ticket.position === null) return 'You are in the queue: your place is drawn when the sale starts.';
      return ticket.estimated_wait_seconds === null
        ? `You are number ${ticket.position}.`
        : `You are number ${ticket.position}, about ${ticket.estimated_wait_seconds} s.`;
    case 'admitted':
      return `It is your turn: buy within ${duration(Date.parse(ticket.admission_expires_at) - serverNow())}.`;
    case 'sold_out':
      return 'Sold out for now: you keep your place if units come back.';
    case 'used':
      return 'You bought with your turn in the queue.';
    case 'expired':
      return 'Your turn passed: join the queue again.';
    case 'left':
      return 'You left the queue.';
    default:
      return ticket.state;
  }
}

async function queueCall(method, path) {
  const headers = { Accept: 'application/json', ...(await buyerHeaders()) };
  const response = await fetch(path, { method, headers, cache: 'no-store' });
  noteServerClock(response);
  const data = await response.json();
  if (!response.ok) throw new ApiProblem(response.status, data || {});
  const after = Number(response.headers.get('Retry-After'));
  return { ticket: data, after: Number.isFinite(after) && after > 0 ? after : null };
}

async function joinQueue(card) {
  const message = part(card.element, 'message');
  message.textContent = '';
  try {
    const { ticket, after } = await queueCall('POST', `/api/products/${card.product.id}/queue`);
    card.ticket = ticket;
    renderProduct(card);
    watchQueue(card, after);
  } catch (error) {
    message.textContent = error instanceof ApiProblem ? refusal(error) : `The shop is not answering: ${error.message}`;
  }
}

async function watchQueue(card, after) {
  let wait = after;
  while (card.ticket && ['waiting', 'sold_out', 'admitted'].includes(card.ticket.state)) {
    await sleep(Math.min(wait ?? 1, 2) * 1000); // the server's hint, but a demo page moves on within 2 s
    try {
      const polled = await queueCall('GET', `/api/queue/${card.ticket.ticket}`);
      card.ticket = polled.ticket;
      wait = polled.after;
    } catch (error) {
      if (error.code === 'ticket_not_found') card.ticket = null;
    }
    renderProduct(card);
  }
}

function renderProduct(card) {
  const { element, product } = card;
  const sale = saleWindow(product, serverNow());
  const soldOut = product.available === 0;
  const queue = part(element, 'queue');
  queue.hidden = !product.waiting_room;
  if (product.waiting_room) {
    const ticket = card.ticket;
    const live = ticket && ['waiting', 'sold_out', 'admitted'].includes(ticket.state);
    queue.textContent = ticket ? queueText(ticket) : 'This sale has a queue: join it to buy.';
    element.dataset.queue = ticket ? ticket.state : 'none';
    part(element, 'buy').textContent = live && ticket.state !== 'admitted' ? 'Waiting…' : live ? 'Buy' : 'Join the queue';
  }
  part(element, 'name').textContent = product.name;
  part(element, 'price').textContent = money(product.price_cents);
  part(element, 'available').textContent = product.available;
  part(element, 'total').textContent = product.stock;
  part(element, 'window').textContent = sale.text;
  const state = soldOut && sale.open ? 'Sold out' : sale.state;
  part(element, 'state').textContent = state;
  element.dataset.state = state.toLowerCase().replace(' ', '-');
  const waiting = product.waiting_room && card.ticket && ['waiting', 'sold_out'].includes(card.ticket.state);
  const joining = product.waiting_room && !(card.ticket && card.ticket.state === 'admitted');
  part(element, 'buy').disabled = joining ? waiting || card.busy : soldOut || !sale.open || card.busy;
}

function showProducts(products) {
  const list = document.getElementById('products');
  for (const product of products) {
    let card = cards.get(product.id);
    if (!card) {
      card = { element: fromTemplate('product-template'), busy: false };
      card.element.dataset.productId = product.id;
      part(card.element, 'buy').addEventListener('click', () => buy(card));
      cards.set(product.id, card);
      list.append(card.element);
    }
    card.product = product;
    renderProduct(card);
  }
}

async function refreshProducts() {
  const notice = document.getElementById('notice');
  try {
    showProducts(await api('GET', '/api/products'));
    notice.hidden = true;
  } catch (error) {
    notice.textContent = `The shop is not answering (${error.message}); trying again…`;
    notice.hidden = false;
  }
}

async function buy(card) {
  const admitted = card.ticket && card.ticket.state === 'admitted';
  if (card.product.waiting_room && !admitted) return joinQueue(card);
  const message = part(card.element, 'message');
  message.textContent = '';
  card.busy = true;
  renderProduct(card);
  try {
    const headers = admitted ? { 'X-Flashsale-Admission': card.ticket.admission_token } : {};
    const body = { product_id: card.product.id, quantity: 1, customer_id: shopper };
    const hold = await buyer('POST', '/api/holds', body, headers);
    if (admitted) card.ticket = { ...card.ticket, state: 'used' };
    addPurchase({ hold, order: null, phase: 'held', message: '', product: card.product });
  } catch (error) {
    message.textContent = error instanceof ApiProblem ? refusal(error) : `The shop is not answering: ${error.message}`;
  } finally {
    card.busy = false;
    await refreshProducts();
  }
}

// --- purchases: a hold, then an order, then the provider's verdict -----------------------------------

function addPurchase(purchase) {
  const element = fromTemplate('purchase-template');
  element.dataset.holdId = purchase.hold.hold_id;
  part(element, 'what').textContent = `${purchase.hold.quantity} × ${purchase.product.name}`;
  part(element, 'pay').addEventListener('click', () => pay(purchase, 'success'));
  part(element, 'decline').addEventListener('click', () => pay(purchase, 'failed'));
  part(element, 'release').addEventListener('click', () => release(purchase));
  purchase.element = element;
  purchases.push(purchase);
  document.getElementById('purchases').prepend(element);
  document.getElementById('no-purchases').hidden = true;
  renderPurchase(purchase);
}

function purchaseStatus(p) {
  const order = p.order;
  switch (p.phase) {
    case 'held':
      return `Held for you: ${duration(Date.parse(p.hold.expires_at) - serverNow())} left to pay`;
    case 'ordering':
      return 'Placing the order…';
    case 'paying':
      return `Order ${order.order_id}: pending, waiting for the payment provider…`;
    case 'paid':
      return `Order ${order.order_id}: paid (transaction ${order.transaction_id})`;
    case 'cancelled':
      return order.cancel_reason === 'payment_failed'
        ? `Order ${order.order_id}: payment declined, order cancelled; the unit went back on sale`
        : `Order ${order.order_id}: cancelled (${order.cancel_reason})`;
    case 'expired':
      return 'Hold expired';
    case 'released':
      return 'Released: the unit went back on sale';
    default:
      return p.phase;
  }
}

function renderPurchase(p) {
  const element = p.element;
  const payable = p.phase === 'held';
  element.dataset.phase = p.phase;
  part(element, 'status').textContent = purchaseStatus(p);
  part(element, 'message').textContent = p.message;
  for (const name of ['pay', 'decline', 'release']) part(element, name).hidden = !payable;
}

async function pay(p, result) {
  p.phase = 'ordering';
  p.message = '';
  renderPurchase(p);
  try {
    p.order = await buyer('POST', '/api/orders', { hold_id: p.hold.hold_id });
  } catch (error) {
    p.phase = error.code === 'hold_expired' || error.code === 'hold_released' ? 'expired' : 'held';
    p.message = error instanceof ApiProblem ? refusal(error) : `The shop is not answering: ${error.message}`;
    renderPurchase(p);
    return;
  }
  p.phase = 'paying';
  renderPurchase(p);
  try {
    await buyer('POST', '/api/demo/payments', { order_id: p.order.order_id, status: result });
  } catch (error) {
    p.message =
      error.code === 'demo_provider_disabled'
        ? `No payment provider is wired to this server: pay with \`flashsale pay ${p.order.order_id} --status success\`.`
        : `The payment provider refused: ${error.message}`;
  }
  renderPurchase(p);
  await watchOrder(p);
}

async function watchOrder(p) {
  const deadline = Date.now() + ORDER_WAIT_MS;
  while (p.order.status === 'pending') {
    await sleep(ORDER_POLL_MS);
    try {
      p.order = await buyer('GET', `/api/orders/${p.order.order_id}`);
    } catch (error) {
      // Not answering for a moment is no verdict: keep asking until the deadline.
    }
    if (p.order.status === 'pending' && Date.now() > deadline && !p.message) {
      p.message = 'No word from the payment provider yet; this page keeps checking.';
    }
    renderPurchase(p);
  }
  p.phase = p.order.status;
  renderPurchase(p);
  await refreshProducts();
}

async function release(p) {
  try {
    await buyer('DELETE', `/api/holds/${p.hold.hold_id}`);
    p.phase = 'released';
    p.message = '';
  } catch (error) {
    if (error.code === 'hold_expired') p.phase = 'expired';
    p.message = error instanceof ApiProblem ? refusal(error) : error.message;
  }
  renderPurchase(p);
  await refreshProducts();
}

// Countdowns move every quarter second; a hold whose time is up is shown expired at once.
function tick() {
  for (const card of cards.values()) renderProduct(card);
  for (const p of purchases) {
    if (p.phase === 'held' && Date.parse(p.hold.expires_at) <= serverNow()) {
      p.phase = 'expired';
      p.message = 'Your hold expired: the unit went back on sale.';
    }
    renderPurchase(p);
  }
}

async function pollProducts() {
  for (;;) {
    if (!document.hidden) await refreshProducts();
    await sleep(POLL_MS);
  }
}

document.getElementById('shopper').textContent = `you are ${shopper}`;
setInterval(tick, 250);
pollProducts();
