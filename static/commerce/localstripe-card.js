// Development only (loaded when the shop runs on localstripe, never with real Stripe).
// localstripe's fake Stripe.js cannot attach a card in confirmCardPayment (it only
// answers a 3-D Secure step), so this wraps Stripe(): the card typed in its fake field
// becomes a PaymentMethod on the PaymentIntent, which is then confirmed — the three calls
// real Stripe.js makes. localstripe accepts any "sk_" key; it guards nothing real.
(function () {
  "use strict";
  var script = document.querySelector('script[src$="/js.stripe.com/v3/"]');
  var base = script.src.replace(/\/js\.stripe\.com\/v3\/$/, "");
  var realStripe = window.Stripe;
  var headers = { "Authorization": "Bearer sk_test_localstripe",
                  "Content-Type": "application/x-www-form-urlencoded" };

  async function call(path, fields) {
    var response = await fetch(base + path, { method: "POST", headers: headers,
                                              body: new URLSearchParams(fields) });
    var body = await response.json().catch(function () { return {}; });
    if (!response.ok || body.error) { throw { error: body.error || { message: response.statusText } }; }
    return body;
  }

  window.Stripe = function (key) {
    var stripe = realStripe(key);
    stripe.confirmCardPayment = async function (clientSecret, data) {
      var intent = clientSecret.match(/^(pi_\w+)_secret_/)[1];
      var card = data.payment_method.card.value.card;
      try {
        var method = await call("/v1/payment_methods", {
          "type": "card", "card[number]": card.number.replace(/\s+/g, ""),
          "card[exp_month]": card.exp_month, "card[exp_year]": card.exp_year,
          "card[cvc]": card.cvc });
        await call("/v1/payment_intents/" + intent, { "payment_method": method.id });
        var confirmed = await call("/v1/payment_intents/" + intent + "/confirm", {});
        return { paymentIntent: confirmed };
      } catch (failure) {
        return failure.error ? failure : { error: { message: String(failure) } };
      }
    };
    return stripe;
  };
})();
