package fr.vtdui.hapi;

import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * The few server settings vtdui changes, under the prefix {@code vtdui.hapi}.
 *
 * <p>Defaults suit tests and demos: REST-hook subscriptions on, cached search results never reused (a search
 * right after a write must see the write), any client-assigned id accepted.
 */
@ConfigurationProperties(prefix = "vtdui.hapi")
public class LauncherProperties {

	/** Enable REST-hook subscriptions (Subscription.channel.type = rest-hook). */
	private boolean resthookEnabled = true;

	/** Reuse identical searches for this many milliseconds; 0 or less disables the search cache. */
	private long reuseCachedSearchResultsMillis = 0;

	/** Accept client-assigned ids of any form (ANY) or only non-numeric ones (ALPHANUMERIC). */
	private String clientIdStrategy = "ANY";

	/** Allow a conditional delete to remove several resources at once. */
	private boolean allowMultipleDelete = true;

	/** Check that references point to existing resources on write. */
	private boolean enforceReferentialIntegrityOnWrite = true;

	/**
	 * How often saved resources are handed to subscription matching, in ms (HAPI's default: 5000). Read by
	 * {@link SubscriptionSchedule} from the environment; declared here so that the setting is documented with
	 * the others.
	 */
	private long subscriptionSubmitIntervalMillis = 250;

	/** Default page size of search results. */
	private int defaultPageSize = 20;

	/** Largest page size a client may ask for with {@code _count}. */
	private int maxPageSize = 500;

	public boolean isResthookEnabled() {
		return resthookEnabled;
	}

	public void setResthookEnabled(boolean value) {
		resthookEnabled = value;
	}

	public long getReuseCachedSearchResultsMillis() {
		return reuseCachedSearchResultsMillis;
	}

	public void setReuseCachedSearchResultsMillis(long value) {
		reuseCachedSearchResultsMillis = value;
	}

	public String getClientIdStrategy() {
		return clientIdStrategy;
	}

	public void setClientIdStrategy(String value) {
		clientIdStrategy = value;
	}

	public boolean isAllowMultipleDelete() {
		return allowMultipleDelete;
	}

	public void setAllowMultipleDelete(boolean value) {
		allowMultipleDelete = value;
	}

	public boolean isEnforceReferentialIntegrityOnWrite() {
		return enforceReferentialIntegrityOnWrite;
	}

	public void setEnforceReferentialIntegrityOnWrite(boolean value) {
		enforceReferentialIntegrityOnWrite = value;
	}

	public int getDefaultPageSize() {
		return defaultPageSize;
	}

	public void setDefaultPageSize(int value) {
		defaultPageSize = value;
	}

	public int getMaxPageSize() {
		return maxPageSize;
	}

	public void setMaxPageSize(int value) {
		maxPageSize = value;
	}

	public long getSubscriptionSubmitIntervalMillis() {
		return subscriptionSubmitIntervalMillis;
	}

	public void setSubscriptionSubmitIntervalMillis(long value) {
		subscriptionSubmitIntervalMillis = value;
	}
}
