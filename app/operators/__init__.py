"""The people who run the gateway: operators, what they may do, and the record of what they did."""
