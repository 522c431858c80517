"""SMS receipts: a text to the payer after a successful payment, sent through Africa's Talking
for merchants that switch it on. Never on the payment's path: a failing SMS changes nothing
about a payment or its events."""
