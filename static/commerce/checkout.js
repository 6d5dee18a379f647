// Card payment on our own page: Stripe.js draws the card field and confirms the
// PaymentIntent the server created (the amount is the server's, never this page's).
(function () {
  "use strict";
  var form = document.getElementById("payment-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var stripe = Stripe(form.dataset.publishableKey);
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var errorBox = document.getElementById("payment-error");
  var button = document.getElementById("pay-button");
  var wait = document.getElementById("payment-wait");

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    button.disabled = true;
    wait.hidden = false;
    errorBox.hidden = true;
    var result = await stripe.confirmCardPayment(form.dataset.clientSecret, {
      payment_method: { card: card, billing_details: { email: form.dataset.email } }
    });
    if (result.error) {
      errorBox.textContent = result.error.message || String(result.error);
      errorBox.hidden = false;
      button.disabled = false;
      wait.hidden = true;
      return;
    }
    window.location.assign(form.dataset.returnUrl);
  });
})();
