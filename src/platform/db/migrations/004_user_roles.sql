-- Admins are made by an operator (`scaleout admin grant`), never by signing up under a name.
ALTER TABLE users ADD COLUMN role text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin'));
