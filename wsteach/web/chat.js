// The chat page's WebSocket client. Notebook 06 walks through it.

// Connect to the address this page came from: same host, path and query,
// with ws: instead of http: (wss: under https:). That is the server that sent
// the page, at http://localhost:7890/ as much as behind Jupyter's /proxy/7890/.
const url = new URL(location.href);
url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
url.hash = "";

const status = document.getElementById("status");
const messages = document.getElementById("messages");
const form = document.getElementById("send");
const nameBox = document.getElementById("name");
const textBox = document.getElementById("text");

let socket;
let retryDelay = 500; // ms; doubles after each failed try, up to 8 s

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
    retryDelay = 500;
    setStatus("connected", "open");
  };
  socket.onmessage = (event) => show(event.data, "received");
  socket.onclose = (event) => {
    // The server went away (or never answered): try again, waiting longer
    // each time, so that a room full of pages doesn't hammer a restarting server.
    const reason = event.reason ? ` (${event.code}: ${event.reason})` : "";
    setStatus(`disconnected${reason}, retrying in ${retryDelay / 1000} s`, "closed");
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
