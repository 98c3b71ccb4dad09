// The integrity page: while a "Verify now" runs, poll its progress and move the progress bar;
// when it ends, reload the page, which shows the result (rendered on the server).
const report = document.getElementById("report");

async function poll() {
  const bar = document.getElementById("verify-progress");
  const text = document.getElementById("verify-text");
  try {
    const r = await fetch(report.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) {
      text.textContent = `Progress unavailable (HTTP ${r.status}); reload the page.`;
      return;
    }
    const s = await r.json();
    if (s.state !== "running") {
      location.reload();
      return;
    }
    bar.max = s.total || 1;
    bar.value = s.done;
    text.textContent = `Verifying: ${s.done} of ${s.total} entries`;
  } catch (err) {
    text.textContent = `Progress unavailable (${err && err.message}); retrying.`;
  }
  setTimeout(poll, 500);
}

if (report && report.dataset.state === "running") {
  setTimeout(poll, 300);
}
