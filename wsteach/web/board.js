// The class board's page: the feed at /board, drawn as text only.
//
// Everything a student sent (names, notes, causes) goes into the page with
// textContent, never innerHTML: it shows as text and can never run.

const url = new URL(location.href);
url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
url.hash = "";
document.getElementById("export").href = "board.csv" + location.search;

const status = document.getElementById("status");
const students = new Map(); // name -> row as the server sent it
let stuckAfter = null; // seconds, or null
let clockOffset = 0; // server time - this browser's time, in seconds
let drawing = false;
let retryDelay = 500;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function now() {
  return Date.now() / 1000 + clockOffset;
}

function minutes(seconds) {
  return `${Math.max(0, Math.floor(seconds / 60))} min`;
}

function clock(at) {
  return new Date((at - clockOffset) * 1000).toTimeString().slice(0, 5);
}

// Same order as the server's step_order: 2.1 < 2.1b < 2.2 < 2.10 < 3.1.
function stepOrder(a, b) {
  const pa = a.match(/[0-9]+|[^0-9._-]+/g) ?? [], pb = b.match(/[0-9]+|[^0-9._-]+/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i], y = pb[i];
    const dx = /^[0-9]/.test(x), dy = /^[0-9]/.test(y);
    if (dx !== dy) return dx ? -1 : 1;
    if (dx && Number(x) !== Number(y)) return Number(x) - Number(y);
    if (!dx && x !== y) return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

// Same rule as the server's Student.stuck: 3 failures in a row on a step,
// or no step turned green for stuck_after seconds; only when online.
function stuck(student) {
  if (!student.online) return "";
  const steps = Object.keys(student.cells).sort(stepOrder);
  for (const step of steps) {
    const fails = student.cells[step].fails;
    if (fails >= 3) return `failed ${step} ${fails} times`;
  }
  if (stuckAfter !== null && now() - student.progress >= stuckAfter) {
    return `no progress for ${minutes(now() - student.progress)}`;
  }
  return "";
}

function cellText(cell) {
  const marks = [];
  if (cell.hints) marks.push(`hint ${cell.hints}`);
  if (cell.solution) marks.push("solution");
  const main = cell.result === "passed" ? "✓" : cell.result === "failed" ? cell.cause || "✗" : "";
  return [main, ...marks].filter(Boolean).join(" · ");
}

function draw() {
  drawing = false;
  const rows = [...students.values()].sort((a, b) =>
    a.name.localeCompare(b.name, undefined, { sensitivity: "base" }));
  const steps = [...new Set(rows.flatMap((s) => Object.keys(s.cells)))].sort(stepOrder);
  const online = rows.filter((s) => s.online).length;
  document.getElementById("count").textContent = `${online} online · ${rows.length} students`;

  const hands = rows.filter((s) => s.hand !== null).sort((a, b) => a.hand_since - b.hand_since);
  const handList = document.getElementById("hands");
  handList.replaceChildren(...hands.map((s) => el("li",
    `${s.name}: ${s.hand} (since ${clock(s.hand_since)}, ${minutes(now() - s.hand_since)})`)));
  if (!hands.length) handList.append(el("li", "no hands up", "none"));

  const stuckRows = rows.map((s) => [s, stuck(s)]).filter(([, why]) => why);
  const stuckList = document.getElementById("stuck");
  stuckList.replaceChildren(...stuckRows.map(([s, why]) => el("li", `${s.name}: ${why}`)));
  if (!stuckRows.length) stuckList.append(el("li", "nobody", "none"));

  const head = el("tr");
  head.append(el("th", "student", "name"));
  for (const step of steps) {
    const passed = rows.filter((s) => s.cells[step]?.result === "passed").length;
    const th = el("th", step);
    th.append(el("small", `${passed}/${rows.length} ✓`));
    head.append(th);
  }
  const body = rows.map((s) => {
    const tr = el("tr");
    const why = stuck(s);
    tr.className = [s.online ? "" : "offline", why ? "stuck" : "", s.hand !== null ? "hand" : ""]
      .filter(Boolean).join(" ");
    tr.dataset.name = s.name;
    tr.append(el("th", s.online ? s.name : `${s.name} (away)`, "name"));
    for (const step of steps) {
      const cell = s.cells[step];
      const td = el("td", cell ? cellText(cell) : "", cell ? cell.result : "");
      td.dataset.step = step;
      if (cell && cell.cause) td.title = cell.cause;
      tr.append(td);
    }
    return tr;
  });
  document.querySelector("#grid thead").replaceChildren(head);
  document.querySelector("#grid tbody").replaceChildren(...body);
}

function redraw() {
  if (!drawing) {
    drawing = true;
    requestAnimationFrame(draw);
  }
}

function connect() {
  const socket = new WebSocket(url);
  socket.onopen = () => {
    retryDelay = 500;
    status.textContent = "live";
    status.dataset.state = "open";
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    clockOffset = message.now - Date.now() / 1000;
    if (message.type === "board") {
      students.clear();
      stuckAfter = message.stuck_after;
    }
    for (const student of message.students) students.set(student.name, student);
    redraw();
  };
  socket.onclose = (event) => {
    status.textContent = `disconnected (${event.code}), retrying in ${retryDelay / 1000} s`;
    status.dataset.state = "closed";
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 4000);
  };
}

setInterval(redraw, 15000); // "since" and "no progress" move with the clock
connect();
