// The event page: checks the inclusion proof in the browser (proof.js) against a verifier
// key pinned in this browser or, with a visible note, the key the server sends.
import { Failure, parseKey, verify } from "./proof.js";

const PIN = "auditkeep.pinned-verifier-key";

function show(ok, title, detail) {
  const v = document.getElementById("verdict");
  v.textContent = title;
  v.className = "verdict " + (ok ? "good" : "bad");
  document.getElementById("verdict-detail").textContent = detail;
}

async function run() {
  const data = JSON.parse(document.getElementById("proof-data").textContent);
  const pinned = localStorage.getItem(PIN);
  const note = document.getElementById("trust-note");
  note.textContent = pinned
    ? "Checked against the verifier key pinned in this browser."
    : "Checked against the verifier key this server sends. A server that lies could send a key of its own: " +
      "pin the key you got out of band (auditkeep pubkey) to make this check independent of the server.";
  document.getElementById("pin-key").value = pinned || "";
  try {
    const got = await verify(data, pinned || data.server_key);
    const when = data.signed_at ? `, checkpoint signed ${data.signed_at}` : "";
    show(true, "Verified", `Included at index ${data.index} of the log's tree of size ${got.treeSize}${when}. Leaf hash ${got.leafHash}.`);
  } catch (err) {
    const reason = err instanceof Failure ? err.message : `the check could not run (${err && err.message})`;
    show(false, "Not verified", reason);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("pin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = document.getElementById("pin-key").value.trim();
    try {
      await parseKey(value);
    } catch (err) {
      show(false, "Not verified", `the key was not pinned: ${err.message}`);
      return;
    }
    localStorage.setItem(PIN, value);
    run();
  });
  document.getElementById("unpin").addEventListener("click", () => { localStorage.removeItem(PIN); run(); });
  run();
});
