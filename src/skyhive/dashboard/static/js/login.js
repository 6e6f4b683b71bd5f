// Sign in: trade the API key for a session cookie (HttpOnly, so no script ever sees it again).

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const key = form.elements.key.value.trim();
  let resp;
  try {
    resp = await fetch("/api/v1/session", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ key }),
    });
  } catch (err) {
    error.textContent = `The server did not answer: ${err.message}`;
    return;
  }
  if (resp.ok) {
    window.location.assign("/");
    return;
  }
  const data = await resp.json().catch(() => null);
  error.textContent = data?.error?.message ?? `Sign-in failed (HTTP ${resp.status})`;
});
