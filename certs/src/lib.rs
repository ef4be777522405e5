//! The appliance's internal certificate authority.
