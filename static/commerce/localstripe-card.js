// Development only: loaded when the shop runs on localstripe (`make run` without Stripe
// keys), never with real Stripe. localstripe's fake Stripe.js cannot attach a card in
// confirmCardPayment (it only answers a 3-D Secure step), and its API refuses the
// browser's CORS preflight for the calls that would, so this wraps Stripe(): the test card
// typed in its fake field goes to the site's local-only endpoint, which makes the
// PaymentMethod, attaches it and confirms the intent on localstripe — the calls real
// Stripe.js makes from the browser.
(function () {
  "use strict";
  var realStripe = window.Stripe;
  var form = document.getElementById("payment-form");

  window.Stripe = function (key) {
    var stripe = realStripe(key);
    stripe.confirmCardPayment = async function (clientSecret, data) {
      var card = data.payment_method.card.value ? data.payment_method.card.value.card : null;
      if (!card) { return { error: { message: form.dataset.cardMissing } }; }
      var fields = new URLSearchParams({
        intent: clientSecret.match(/^(pi_\w+)_secret_/)[1],
        number: card.number.replace(/\s+/g, ""), exp_month: card.exp_month,
        exp_year: card.exp_year, cvc: card.cvc });
      try {
        var response = await fetch(form.dataset.localCardUrl, {
          method: "POST", body: fields, credentials: "same-origin",
          headers: { "X-CSRFToken": form.querySelector("input[name=csrfmiddlewaretoken]").value } });
        var body = await response.json();
        return body.error ? { error: body.error } : { paymentIntent: body };
      } catch (failure) {
        return { error: { message: String(failure) } };
      }
    };
    return stripe;
  };
})();
