// The chat page's WebSocket client. Notebook 06 walks through it.

// Connect to the address this page came from: same host, path and query,
// with ws: instead of http: (wss: under https:). That is the server that sent
// the page, at http://localhost:7890/ as much as behind Jupyter's /proxy/7890/.
const url = new URL(location.href);
url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
url.hash = "";
// Behind Jupyter, the browser sends Jupyter's login cookie with the WebSocket
// request, as with the page: Jupyter's ?token=… isn't needed, and a secret in
// a URL ends up in logs and in the server's trace.
url.searchParams.delete("token");

// Close codes with which the server says "this page did something wrong"
// (1003 unsupported data, 1008 policy violation such as a rate limit, 1009
// message too big…) or "done" (1000): trying again would get the same answer.
const FINAL = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010]);
const STEADY = 10000; // ms open after which a connection counts as working again

const status = document.getElementById("status");
const messages = document.getElementById("messages");
const form = document.getElementById("send");
const nameBox = document.getElementById("name");
const textBox = document.getElementById("text");

let socket;
let retryDelay = 500; // ms; doubles after each failed try, up to 8 s
let openedAt = 0;

function show(text, kind) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text; // textContent: shown as text, never run as HTML
  messages.append(item);
  item.scrollIntoView({ block: "nearest" });
}

function setStatus(text, state) {
  status.textContent = text;
  status.dataset.state = state;
  form.querySelector("button").disabled = state !== "open";
}

function connect() {
  setStatus("connecting…", "connecting");
  socket = new WebSocket(url);
  socket.onopen = () => {
    openedAt = Date.now();
    setStatus("connected", "open");
  };
  socket.onmessage = (event) => show(event.data, "received");
  socket.onclose = (event) => {
    const why = event.reason ? `${event.code}: ${event.reason}` : `${event.code}`;
    if (FINAL.has(event.code)) {
      setStatus(`closed by the server (${why}); reload the page to reconnect`, "final");
      return;
    }
    // Only a connection that stayed open a while starts the backoff afresh: a
    // server that accepts and drops each try at once still gets fewer tries.
    if (openedAt && Date.now() - openedAt >= STEADY) retryDelay = 500;
    openedAt = 0;
    // The server went away (or never answered): try again, waiting longer
    // each time, so that a room full of pages doesn't hammer a restarting server.
    setStatus(`disconnected (${why}), retrying in ${retryDelay / 1000} s`, "closed");
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 8000);
  };
}

form.onsubmit = (event) => {
  event.preventDefault(); // stay on this page: the message goes over the socket
  const name = nameBox.value.trim();
  const message = name ? `${name}: ${textBox.value}` : textBox.value;
  socket.send(message);
  show(message, "sent"); // the room sends it to the others, not back to us
  textBox.value = "";
};

connect();
