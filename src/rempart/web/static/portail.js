/*
 * Rempart — the portal's one script: the security-key and passkey ceremonies
 * (navigator.credentials), nothing else. Served by the app itself; no third-party code.
 *
 * A form opts in with data attributes:
 *   data-webauthn="get" | "create"   which ceremony
 *   data-options="/portail/…"        where to ask for the options (POST, JSON)
 *   data-finish="/portail/…"         where to send the browser's answer (POST, JSON)
 *   data-csrf="…"                    the page's token, sent as X-CSRF-Token
 * The form's own fields (a label, an enrolment code…) travel with both calls. The
 * server answers {"next": url} (the page to go to) or {"error", "message"}: the
 * message is shown in the form's [data-webauthn-status] element (role="alert").
 */
(function () {
  "use strict";

  function toBytes(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (item) {
      var copy = Object.assign({}, item);
      copy.id = toBytes(item.id);
      return copy;
    });
  }

  function creationOptions(options) {
    var publicKey = Object.assign({}, options);
    publicKey.challenge = toBytes(options.challenge);
    publicKey.user = Object.assign({}, options.user, { id: toBytes(options.user.id) });
    publicKey.excludeCredentials = withIds(options.excludeCredentials);
    return publicKey;
  }

  function requestOptions(options) {
    var publicKey = Object.assign({}, options);
    publicKey.challenge = toBytes(options.challenge);
    publicKey.allowCredentials = withIds(options.allowCredentials);
    return publicKey;
  }

  function answer(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toText(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toText(response.authenticatorData);
      json.response.signature = toText(response.signature);
      json.response.userHandle = response.userHandle ? toText(response.userHandle) : undefined;
    }
    return json;
  }

  function fields(form) {
    var data = {};
    new FormData(form).forEach(function (value, name) {
      if (name !== "csrf" && typeof value === "string") { data[name] = value; }
    });
    return data;
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body)
    }).then(function (reply) {
      return reply.json().catch(function () { return {}; }).then(function (data) {
        if (!reply.ok || data.error) {
          throw new Error(data.message || "Le service ne répond pas : réessayez dans un instant.");
        }
        return data;
      });
    });
  }

  function say(form, text) {
    var status = form.querySelector("[data-webauthn-status]");
    if (status) { status.textContent = text; }
  }

  function ceremony(form) {
    var kind = form.getAttribute("data-webauthn");
    var csrf = form.getAttribute("data-csrf") || "";
    var extra = fields(form);
    var button = form.querySelector("button[type=submit], button:not([type])");
    if (button) { button.disabled = true; }
    say(form, kind === "create"
      ? "Suivez les indications de votre navigateur pour enregistrer la clé."
      : "Présentez votre clé de sécurité ou votre passkey.");
    post(form.getAttribute("data-options"), csrf, extra)
      .then(function (ceremonyData) {
        var call = kind === "create"
          ? navigator.credentials.create({ publicKey: creationOptions(ceremonyData.options) })
          : navigator.credentials.get({ publicKey: requestOptions(ceremonyData.options) });
        return call.then(function (credential) {
          if (!credential) { throw new Error("Aucune clé n'a répondu."); }
          var body = Object.assign({}, extra, {
            handle: ceremonyData.handle,
            credential: answer(credential)
          });
          return post(form.getAttribute("data-finish"), csrf, body);
        }, function (error) {
          if (error && error.name === "NotAllowedError") {
            throw new Error("La clé n'a pas été utilisée (opération annulée ou délai dépassé).");
          }
          if (error && error.name === "InvalidStateError") {
            throw new Error("Cette clé est déjà enregistrée sur votre compte.");
          }
          if (error && error.name === "SecurityError") {
            throw new Error("Cette page ne peut pas utiliser votre clé : vérifiez l'adresse du site.");
          }
          throw new Error("Votre navigateur n'a pas pu utiliser la clé.");
        });
      })
      .then(function (done) {
        say(form, "C'est fait.");
        window.location.assign(done.next);
      })
      .catch(function (error) {
        say(form, error.message);
        if (button) { button.disabled = false; }
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-webauthn")) { return; }
    event.preventDefault();
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(form, "Ce navigateur ne sait pas utiliser les clés de sécurité.");
      return;
    }
    ceremony(form);
  });
}());
