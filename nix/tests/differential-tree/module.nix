# A module imported twice by nix/tests/differential.nix: the module system takes it once.
{ lib, ... }:
{
  options.a = lib.mkOption { type = lib.types.str; };
}
