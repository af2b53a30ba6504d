//! Channel kinds: rendering a message for Teams, Slack, a signed webhook or e-mail, and sending it.
