// Sign-in, registration, e-mail verification and the account page. The login answers of
// checklist 1-C each get their own banner: BAD_CREDENTIALS, INACTIVE_ACCOUNT (with a resend
// button) and RATE_LIMITED (with a countdown from Retry-After).
import { ApiError, api, changePassword, login, state } from "../api.js";
import { banner, errorText, field, h, link, navigate, page } from "../ui.js";

function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export function loginView() {
  const email = h("input", { type: "email", name: "email", id: "login-email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", id: "login-password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", id: "login-submit" }, "Sign in");
  const badCreds = banner("error", "E-mail or password is wrong.", { id: "banner-bad-credentials", hidden: true });
  const resendNote = h("span", { id: "resend-note" });
  const inactive = h("div", { class: "banner warn", role: "alert", id: "banner-inactive", hidden: true },
    "Please verify your e-mail: open the link we sent you.",
    h("button", { type: "button", class: "secondary", id: "resend-verification", onclick: resend }, "Resend the e-mail"),
    " ", resendNote);
  const waitText = h("span", { id: "rate-limit-seconds" });
  const limited = h("div", { class: "banner error", role: "alert", id: "banner-rate-limited", hidden: true },
    "Too many sign-in attempts. Try again in ", waitText, ".");
  const other = banner("error", "", { id: "banner-login-error", hidden: true });
  const banners = [badCreds, inactive, limited, other];
  let countdown = null;

  function show(which) {
    banners.forEach((b) => { b.hidden = b !== which; });
  }

  function startCountdown(seconds) {
    clearInterval(countdown);
    let left = Math.max(1, Math.ceil(seconds));
    const tick = () => {
      waitText.textContent = left === 1 ? "1 second" : `${left} seconds`;
      submit.disabled = left > 0;
      if (left <= 0) { clearInterval(countdown); submit.disabled = false; waitText.textContent = "a moment"; limited.hidden = true; }
      left -= 1;
    };
    tick();
    countdown = setInterval(tick, 1000);
  }

  async function resend() {
    try {
      await api("POST", "/auth/verify/resend", { body: { email: email.value }, auth: false });
      resendNote.textContent = "A new link is on its way.";
    } catch (err) {
      resendNote.textContent = errorText(err);
    }
  }

  async function onsubmit(e) {
    e.preventDefault();
    submit.disabled = true;
    try {
      await login(email.value, password.value);
      state.user = await api("GET", "/auth/me");
      show(null);
      navigate(safeNext());
    } catch (err) {
      submit.disabled = false;
      if (!(err instanceof ApiError)) { other.textContent = String(err); show(other); return; }
      if (err.code === "BAD_CREDENTIALS") show(badCreds);
      else if (err.code === "INACTIVE_ACCOUNT") { resendNote.textContent = ""; show(inactive); }
      else if (err.code === "RATE_LIMITED") { show(limited); startCountdown(err.retryAfter || 60); }
      else { other.textContent = errorText(err); show(other); }
      (banners.find((b) => !b.hidden) || other).focus?.();
    }
  }

  const verified = new URLSearchParams(location.search).get("verified");
  page("Sign in",
    verified ? banner("ok", "Your e-mail is verified. You can sign in now.", { id: "banner-verified" }) : null,
    ...banners,
    h("form", { class: "stack", onsubmit, "aria-label": "Sign in" },
      field("E-mail", email), field("Password", password), submit,
      h("p", {}, "No account yet? ", link("/register", "Register"))));
  email.focus();
  return () => clearInterval(countdown);
}

export function registerView() {
  const email = h("input", { type: "email", id: "register-email", autocomplete: "email", required: true });
  const name = h("input", { type: "text", id: "register-name", autocomplete: "name" });
  const password = h("input", { type: "password", id: "register-password", autocomplete: "new-password", required: true, minlength: "8" });
  const msg = h("div");
  async function onsubmit(e) {
    e.preventDefault();
    try {
      // The same answer whether or not the address has an account (it is not told here).
      const r = await api("POST", "/auth/register", { body: { email: email.value, password: password.value, full_name: name.value }, auth: false });
      msg.replaceChildren(banner("ok", "Check your inbox: we sent an e-mail to " + r.email + ". Open the link in it to activate your account.", { id: "banner-registered" }));
      e.target.reset();
    } catch (err) {
      msg.replaceChildren(banner("error", errorText(err), { id: "banner-register-error" }));
    }
  }
  page("Create an account", msg,
    h("form", { class: "stack", onsubmit, "aria-label": "Register" },
      field("E-mail", email), field("Name (optional)", name),
      field("Password (at least 8 characters)", password),
      h("button", { type: "submit", id: "register-submit" }, "Register"),
      h("p", {}, "Have an account? ", link("/login", "Sign in"))));
  email.focus();
}

export async function verifyView() {
  const token = new URLSearchParams(location.search).get("token") || "";
  const main = page("Verify your e-mail", h("p", { id: "verify-status" }, "Checking your link…"));
  try {
    await api("POST", "/auth/verify", { body: { token }, auth: false });
    main.replaceChildren(h("h1", { text: "E-mail verified" }),
      banner("ok", "Your account is active.", { id: "banner-verified" }),
      link("/login?verified=1", "Sign in", { id: "verified-sign-in", class: "button" }));
  } catch (err) {
    main.replaceChildren(h("h1", { text: "Verify your e-mail" }),
      banner("error", err.code === "VERIFICATION_INVALID" ? errorText(err) + " Sign in to ask for a new link." : errorText(err), { id: "banner-verify-error" }),
      link("/login", "Sign in"));
  }
}

export function accountView() {
  const current = h("input", { type: "password", id: "current-password", autocomplete: "current-password", required: true });
  const next = h("input", { type: "password", id: "new-password", autocomplete: "new-password", required: true, minlength: "8" });
  const again = h("input", { type: "password", id: "new-password-again", autocomplete: "new-password", required: true, minlength: "8" });
  const submit = h("button", { type: "submit", id: "change-password" }, "Change password");
  const msg = h("div", { id: "password-msg" });
  const say = (b) => { msg.replaceChildren(b); b.tabIndex = -1; b.focus(); };
  async function onsubmit(e) {
    e.preventDefault();
    if (next.value !== again.value) {
      say(banner("error", "The two new passwords differ.", { id: "banner-password-mismatch" }));
      return;
    }
    submit.disabled = true;
    try {
      await changePassword(current.value, next.value);
      e.target.reset();
      say(banner("ok", "Password changed. Other sessions were signed out.", { id: "banner-password-changed" }));
    } catch (err) {
      say(err.code === "BAD_CREDENTIALS"
        ? banner("error", "The current password is wrong: your password was not changed.", { id: "banner-password-wrong" })
        : banner("error", errorText(err), { id: "banner-password-error" }));
    } finally {
      submit.disabled = false;
    }
  }
  const u = state.user || {};
  page("Your account",
    h("p", {}, "Signed in as ", h("strong", { text: u.email || "" }), u.is_admin ? " (administrator)" : ""),
    h("h2", { text: "Change password" }), msg,
    h("form", { class: "stack", onsubmit, "aria-label": "Change password" },
      field("Current password", current), field("New password (at least 8 characters)", next),
      field("New password again", again), submit));
}
