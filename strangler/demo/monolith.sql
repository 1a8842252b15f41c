-- The sample monolith: the runbook's order service still living in public, next to the
-- customers and products that stay behind. Deterministic (setseed), sized by :orders.
-- Loaded by strangler/demo/monolith.py with the scale substituted as a bound parameter.

CREATE TYPE public.order_status AS ENUM ('pending', 'paid', 'shipped', 'delivered', 'cancelled');
CREATE DOMAIN public.money_amount AS numeric(12, 2) CHECK (VALUE >= 0);

CREATE TABLE public.customers (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.products (
    id          serial PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    price       numeric(10, 2) NOT NULL CHECK (price > 0),
    attributes  jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE public.orders (
    id           bigserial PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES public.customers (id),
    status       public.order_status NOT NULL DEFAULT 'pending',
    total        public.money_amount NOT NULL,
    currency     char(3) NOT NULL DEFAULT 'EUR',
    shipping     jsonb,
    notes        text,
    tags         text[] NOT NULL DEFAULT '{}',
    placed_at    timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.orders IS 'One customer order; moves to order_service.';
CREATE INDEX orders_customer_id_idx ON public.orders (customer_id);
CREATE INDEX orders_placed_at_idx ON public.orders (placed_at);
CREATE INDEX orders_open_idx ON public.orders (status) WHERE status NOT IN ('delivered', 'cancelled');
CREATE INDEX orders_notes_lower_idx ON public.orders (lower(notes));

CREATE TABLE public.order_items (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES public.orders (id) ON DELETE CASCADE,
    product_id  integer NOT NULL REFERENCES public.products (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric(10, 2) NOT NULL,
    discount    numeric(5, 2) NOT NULL DEFAULT 0,
    UNIQUE (order_id, product_id)
);
CREATE INDEX order_items_product_id_idx ON public.order_items (product_id);

CREATE TABLE public.order_status_history (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES public.orders (id) ON DELETE CASCADE,
    status      public.order_status NOT NULL,
    changed_at  timestamptz NOT NULL,
    changed_by  text NOT NULL DEFAULT current_user
);
CREATE INDEX order_status_history_order_idx ON public.order_status_history (order_id, changed_at);

-- The monolith's own reader of the moved tables: boundary analysis must list it.
CREATE VIEW public.customer_order_totals AS
    SELECT c.id AS customer_id, count(o.id) AS orders, coalesce(sum(o.total), 0) AS total
    FROM public.customers c LEFT JOIN public.orders o ON o.customer_id = c.id
    GROUP BY c.id;

DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'monolith_app') THEN
        CREATE ROLE monolith_app NOLOGIN;
    END IF;
END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO monolith_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO monolith_app;
