#!/bin/sh
# dracut cmdline hook: root=soci:... is mosctl's; tell dracut the root is handled (the mount hook does it).
case "$(getarg root=)" in
    soci:*) root=soci; rootok=1; export root rootok ;;
esac
