-- The render samples inspection reads from a .blend (Cycles' samples,
-- EEVEE's render samples; NULL for engines without, and for scenes
-- inspected before it was read).
ALTER TABLE scenes ADD COLUMN samples INTEGER;
