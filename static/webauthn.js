// Passkeys on Latchkey's hosted pages. Loaded as a file (the pages' CSP allows scripts from 'self' only).
//
// A form marked data-webauthn="register" | "assert" | "sign-in" runs a WebAuthn ceremony when submitted:
// it posts its CSRF token to data-options, gets the options JSON (and a ceremony id in "state"), asks the
// browser for a credential, puts the result (JSON) in the form's hidden "credential" (or "code") field
// and "state" field, and submits the form normally, so the server answers with a page as for any form.
(() => {
  'use strict';

  const toBuf = (s) => {
    const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
    return Uint8Array.from(b, (c) => c.charCodeAt(0)).buffer;
  };
  const toB64u = (buf) =>
    btoa(String.fromCharCode(...new Uint8Array(buf)))
      .replace(/\+/g, '-')
      .replace(/\//g, '_')
      .replace(/=+$/, '');

  const creationOptions = ({ publicKey }) => ({
    publicKey: {
      ...publicKey,
      challenge: toBuf(publicKey.challenge),
      user: { ...publicKey.user, id: toBuf(publicKey.user.id) },
      excludeCredentials: (publicKey.excludeCredentials ?? []).map((c) => ({ ...c, id: toBuf(c.id) })),
    },
  });

  const registrationJson = (cred) => ({
    id: cred.id,
    rawId: toB64u(cred.rawId),
    type: cred.type,
    response: {
      attestationObject: toB64u(cred.response.attestationObject),
      clientDataJSON: toB64u(cred.response.clientDataJSON),
      transports: cred.response.getTransports?.() ?? null,
    },
    extensions: cred.getClientExtensionResults(),
  });

  const requestOptions = ({ publicKey }) => ({
    publicKey: {
      ...publicKey,
      challenge: toBuf(publicKey.challenge),
      allowCredentials: (publicKey.allowCredentials ?? []).map((c) => ({ ...c, id: toBuf(c.id) })),
    },
  });

  const assertionJson = (cred) => ({
    id: cred.id,
    rawId: toB64u(cred.rawId),
    type: cred.type,
    response: {
      authenticatorData: toB64u(cred.response.authenticatorData),
      clientDataJSON: toB64u(cred.response.clientDataJSON),
      signature: toB64u(cred.response.signature),
      userHandle: cred.response.userHandle ? toB64u(cred.response.userHandle) : null,
    },
    extensions: cred.getClientExtensionResults(),
  });

  const say = (form, message) => {
    const box = form.querySelector('[data-webauthn-error]');
    if (box) {
      box.textContent = message;
      box.hidden = !message;
    }
  };

  const run = async (form) => {
    const kind = form.dataset.webauthn;
    const body = new URLSearchParams({ csrf: form.elements.csrf.value });
    const answer = await fetch(form.dataset.options, {
      method: 'POST',
      body,
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
    });
    const reply = await answer.json().catch(() => ({}));
    if (!answer.ok) {
      throw new Error(reply.error_description || 'The passkey could not be used here.');
    }
    if (form.elements.state && reply.state) form.elements.state.value = reply.state;
    let result;
    if (kind === 'register') {
      result = registrationJson(await navigator.credentials.create(creationOptions(reply.options)));
    } else {
      result = assertionJson(await navigator.credentials.get(requestOptions(reply.options)));
    }
    (form.elements.credential || form.elements.code).value = JSON.stringify(result);
    form.submit();
  };

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.webauthn) return;
    event.preventDefault();
    if (!window.PublicKeyCredential) {
      say(form, 'This browser does not support passkeys.');
      return;
    }
    say(form, '');
    const button = form.querySelector('button');
    if (button) button.disabled = true;
    run(form).catch((error) => {
      if (button) button.disabled = false;
      say(form, error.name === 'NotAllowedError' ? 'The passkey request was cancelled or timed out.' : error.message);
    });
  });
})();
