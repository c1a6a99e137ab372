module esox.dev/stack/bao-ldap

go 1.26.0

require (
	github.com/openbao/openbao v0.0.0-20250228171903-17824a97f7b9
	github.com/openbao/openbao/api/v2 v2.3.0
	github.com/openbao/openbao/sdk/v2 v2.3.0
)
