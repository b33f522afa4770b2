#!/bin/sh
exec /usr/bin/node /usr/lib/mosctl/mosctl.mjs "$@"
