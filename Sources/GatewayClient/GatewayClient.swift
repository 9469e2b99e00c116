// The binary-protocol client lives here.
